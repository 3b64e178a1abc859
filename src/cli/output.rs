//! `-o json|yaml`: the drill's result on stdout for scripts, as kubectl's
//! `-o`. The document is the one `--report` writes (the verdict table then
//! goes to stderr, so stdout holds nothing else).

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Json,
    Yaml,
}

/// `doc` as pretty JSON or YAML, ending in a newline.
pub fn render(doc: &impl Serialize, format: OutputFormat) -> Result<String, String> {
    match format {
        OutputFormat::Json => serde_json::to_string_pretty(doc)
            .map(|s| s + "\n")
            .map_err(|e| format!("cannot write the result as JSON: {e}")),
        OutputFormat::Yaml => serde_yaml_ng::to_string(doc)
            .map_err(|e| format!("cannot write the result as YAML: {e}")),
    }
}
