//! The README a newcomer reads (issue 25): short, and what it says the code
//! does is what the code does. Its commands are ones the binary and the
//! Makefile know, its default-step list is `Step::DEFAULT`, and every
//! relative link in it and in docs/ leads somewhere.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use natsregion::api::Step;

use super::{read, root};

/// A newcomer's page, not the manual: the manual is docs/.
const README_MAX_LINES: usize = 350;

fn readme() -> String {
    read(&root().join("README.md"))
}

/// The Markdown pages whose links and default-step lists are checked.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md"), root().join("CONTRIBUTING.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The text of `md` outside fenced code blocks, with each code line blanked
/// (so offsets and line numbers still match), and the code blocks' lines.
fn split_code(md: &str) -> (String, Vec<String>) {
    let mut prose = String::new();
    let mut code = Vec::new();
    let mut fenced = false;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            prose.push('\n');
            continue;
        }
        if fenced {
            code.push(line.to_string());
            prose.push('\n');
        } else {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    (prose, code)
}

/// Shell commands shown in the README: code-block lines (continuations
/// joined, comments and prompts dropped) and inline code spans, those that
/// start with `natsregion ` or `make `.
fn shown_commands(md: &str) -> Vec<String> {
    let (prose, code) = split_code(md);
    let mut lines = Vec::new();
    let mut pending = String::new();
    for line in code {
        let line = line.split(" #").next().unwrap_or("").trim_end();
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        lines.push(std::mem::take(&mut pending));
    }
    for (i, span) in prose.split('`').enumerate() {
        if i % 2 == 1 {
            lines.push(span.to_string());
        }
    }
    lines
        .iter()
        .map(|l| l.trim().trim_start_matches("$ ").to_string())
        .filter(|l| l.starts_with("natsregion ") || l.starts_with("make "))
        .collect()
}

fn natsregion_help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_natsregion"))
        .args(args)
        .arg("--help")
        .output()
        .expect("run natsregion --help");
    assert!(out.status.success(), "natsregion {args:?} --help failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The subcommands `natsregion --help` lists.
fn subcommands() -> BTreeSet<String> {
    natsregion_help(&[])
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Every `--flag` a help text names.
fn long_flags(help: &str) -> BTreeSet<String> {
    help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_string)
        .collect()
}

/// The Makefile's targets.
fn make_targets() -> BTreeSet<String> {
    read(&root().join("Makefile"))
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let plain = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            (plain && !rest.starts_with('=')).then(|| name.to_string())
        })
        .collect()
}

#[test]
fn the_readme_is_short_and_every_command_it_shows_exists() {
    let md = readme();
    let lines = md.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, more than {README_MAX_LINES}: move reference material to docs/"
    );

    let commands = shown_commands(&md);
    let subcommands = subcommands();
    let targets = make_targets();
    let mut wrong = Vec::new();
    for command in &commands {
        let words: Vec<&str> = command.split_whitespace().collect();
        match words[0] {
            "make" => {
                for target in words[1..].iter().filter(|w| !w.starts_with('-')) {
                    if !targets.contains(*target) {
                        wrong.push(format!("`{command}`: no target {target} in the Makefile"));
                    }
                }
            }
            _ => {
                let Some(sub) = words.get(1) else {
                    wrong.push(format!("`{command}`: no subcommand"));
                    continue;
                };
                if !subcommands.contains(*sub) {
                    wrong.push(format!(
                        "`{command}`: natsregion has no subcommand {sub} ({subcommands:?})"
                    ));
                    continue;
                }
                let known = long_flags(&natsregion_help(&[sub]));
                for flag in words[2..].iter().filter(|w| w.starts_with("--")) {
                    let flag = flag.split('=').next().unwrap();
                    let flag = flag.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
                    if !known.contains(flag) {
                        wrong.push(format!("`{command}`: natsregion {sub} has no flag {flag}"));
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "README.md shows commands that do not exist:\n{}",
        wrong.join("\n")
    );

    // The two commands a newcomer needs, and CI runs the README's test command.
    for needed in ["make demo", "make test"] {
        assert!(
            commands.iter().any(|c| c == needed),
            "README.md must show `{needed}` in its quick start"
        );
    }
    let ci = read(&root().join(".ci/run"));
    assert!(
        ci.lines().any(|l| l.trim() == "make test"),
        ".ci/run must run `make test`, the test command the README gives"
    );

    // Files the README's commands name exist.
    let (_, code) = split_code(&md);
    for word in code.iter().flat_map(|l| l.split_whitespace()) {
        let word = word.trim_matches(|c: char| matches!(c, '\'' | '"' | ',' | ')' | '('));
        let top = ["examples/", "charts/", "kind/", "tools/", "docs/", ".ci/"];
        if top.iter().any(|t| word.starts_with(t)) {
            assert!(
                root().join(word).exists(),
                "README.md names {word}, which does not exist"
            );
        }
    }
}

/// The words of `text` with their byte offsets: runs of `[a-z0-9-]`.
fn words(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        let word_char = c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        match (word_char, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, &text[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &text[s..]));
    }
    out
}

fn step_named(word: &str) -> Option<Step> {
    serde_json::from_value(serde_json::Value::String(word.to_string())).ok()
}

/// Every list of four or more step names (separated only by commas, spaces,
/// backticks and line breaks) that the text before it calls the default.
fn default_step_lists(text: &str) -> Vec<(usize, Vec<Step>)> {
    let mut lists = Vec::new();
    let mut run: Vec<(usize, usize, Step)> = Vec::new();
    let mut flush = |run: &mut Vec<(usize, usize, Step)>| {
        if run.len() >= 4 {
            let start = run[0].0;
            let before = &text[text[..start]
                .char_indices()
                .rev()
                .nth(40)
                .map_or(0, |(i, _)| i)..start];
            if before.to_lowercase().contains("default") {
                let line = text[..start].lines().count().max(1);
                lists.push((line, run.iter().map(|r| r.2).collect()));
            }
        }
        run.clear();
    };
    for (at, word) in words(text) {
        let Some(step) = step_named(word) else {
            flush(&mut run);
            continue;
        };
        let joined = run.last().is_some_and(|&(_, end, _)| {
            text[end..at]
                .chars()
                .all(|c| matches!(c, ',' | ' ' | '`' | '\n'))
        });
        if !joined {
            flush(&mut run);
        }
        run.push((at, at + word.len(), step));
    }
    flush(&mut run);
    lists
}

#[test]
fn every_default_step_list_in_the_docs_is_the_codes() {
    let expected: Vec<&str> = Step::DEFAULT.iter().map(|s| s.name()).collect();
    let mut wrong = Vec::new();
    let mut readme_lists = 0;
    for page in pages() {
        let text = read(&page);
        let name = page.strip_prefix(root()).unwrap().display().to_string();
        for (line, steps) in default_step_lists(&text) {
            if name == "README.md" {
                readme_lists += 1;
            }
            let got: Vec<&str> = steps.iter().map(|s| s.name()).collect();
            if got != expected {
                wrong.push(format!("{name}:{line}: {}", got.join(", ")));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "default-step lists that are not Step::DEFAULT ({}):\n{}",
        expected.join(", "),
        wrong.join("\n")
    );
    assert!(
        readme_lists > 0,
        "README.md must list the default steps (`Step::DEFAULT`: {})",
        expected.join(", ")
    );
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// to hyphens; a repeated one gets `-1`, `-2`, ...
fn anchors(md: &str) -> BTreeSet<String> {
    let (prose, _) = split_code(md);
    let mut seen = BTreeSet::new();
    for line in prose.lines() {
        let Some(title) = line.strip_prefix('#') else {
            continue;
        };
        let title = title.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        let slug: String = title
            .trim()
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let mut candidate = slug.clone();
        let mut n = 0;
        while seen.contains(&candidate) {
            n += 1;
            candidate = format!("{slug}-{n}");
        }
        seen.insert(candidate);
    }
    seen
}

/// The targets of the Markdown links (and images) of `md`, outside code.
fn link_targets(md: &str) -> Vec<(usize, String)> {
    let (prose, _) = split_code(md);
    let mut out = Vec::new();
    for (n, line) in prose.lines().enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((n + 1, after[..end].trim().to_string()));
            rest = &after[end..];
        }
    }
    out
}

fn resolve(page: &Path, target: &str) -> Result<(), String> {
    let (path, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (target, None),
    };
    let file = if path.is_empty() {
        page.to_path_buf()
    } else {
        page.parent().unwrap().join(path)
    };
    if !file.exists() {
        return Err(format!("{} does not exist", file.display()));
    }
    if let Some(anchor) = anchor
        && file.extension().is_some_and(|e| e == "md")
        && !anchors(&read(&file)).contains(anchor)
    {
        return Err(format!("{} has no heading #{anchor}", file.display()));
    }
    Ok(())
}

#[test]
fn relative_links_in_the_readme_and_docs_resolve() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let name = page.strip_prefix(root()).unwrap().display().to_string();
        for (line, target) in link_targets(&read(&page)) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            if let Err(why) = resolve(&page, &target) {
                broken.push(format!("{name}:{line}: ({target}): {why}"));
            }
        }
    }
    assert!(
        checked > 0,
        "no relative link found: the link parser is broken"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_anchor_and_step_list_parsers_read_what_github_and_the_docs_write() {
    let a = anchors(
        "# The `natsregion` command\n## Mirror or sources: which topology\n## A b\n## A b\n```\n# not a heading\n```\n",
    );
    for want in [
        "the-natsregion-command",
        "mirror-or-sources-which-topology",
        "a-b",
        "a-b-1",
    ] {
        assert!(a.contains(want), "{want} not in {a:?}");
    }
    assert!(!a.contains("not-a-heading"));
    let lists = default_step_lists(
        "the default steps (produce, pause-consumer, partition,\nproduce, heal, verify); steps `produce`, `heal`, `produce`, `verify`",
    );
    assert_eq!(
        lists.len(),
        1,
        "only the list called the default: {lists:?}"
    );
    assert_eq!(lists[0].1.len(), 6);
}
