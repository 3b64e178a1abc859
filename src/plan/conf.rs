//! Writes typed config structs as nats-server configuration text.
//!
//! The structs are serialized with serde into a `serde_json::Value` and then
//! written in the server's own syntax rather than as JSON, because the server's
//! lexer does not understand JSON's `\uXXXX`, `\b`, `\f` or `\/` escapes: a
//! password with a control character would otherwise be mangled or rejected.
//! Double-quoted strings are never variable-expanded by the server, so `$` is
//! safe inside them.

use std::fmt::Write;

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("config does not serialize: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("config top level must be a map")]
    NotAMap,
    #[error("config key {0:?} is not a plain identifier")]
    Key(String),
}

/// The value as a nats-server config file (top-level keys without braces).
pub fn to_conf<T: Serialize>(value: &T) -> Result<String, ConfError> {
    let Value::Object(map) = serde_json::to_value(value)? else {
        return Err(ConfError::NotAMap);
    };
    let mut out = String::new();
    write_entries(&mut out, &map, 0)?;
    Ok(out)
}

fn write_entries(
    out: &mut String,
    map: &serde_json::Map<String, Value>,
    depth: usize,
) -> Result<(), ConfError> {
    // Sorted here, not by the map, so the output does not change if some other
    // crate turns on serde_json's `preserve_order`.
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        check_key(key)?;
        indent(out, depth);
        out.push_str(key);
        out.push_str(": ");
        write_value(out, &map[key], depth)?;
        out.push('\n');
    }
    Ok(())
}

fn write_value(out: &mut String, value: &Value, depth: usize) -> Result<(), ConfError> {
    match value {
        Value::Null => out.push_str("\"\""),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Array(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                indent(out, depth + 1);
                write_value(out, item, depth + 1)?;
                if i + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(out, depth);
            out.push(']');
        }
        Value::Object(map) => {
            out.push_str("{\n");
            write_entries(out, map, depth + 1)?;
            indent(out, depth);
            out.push('}');
        }
    }
    Ok(())
}

/// A double-quoted string in the escapes the server's lexer accepts:
/// `\"`, `\\`, `\n`, `\t`, `\r` and `\xHH`. Other text, UTF-8 included, is literal.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// Quoted keys take no escapes in the server's lexer and some bare words
// (`include`) are directives, so only plain identifiers are written as keys.
fn check_key(key: &str) -> Result<(), ConfError> {
    let mut chars = key.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && key != "include";
    if ok {
        Ok(())
    } else {
        Err(ConfError::Key(key.to_string()))
    }
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_use_only_escapes_the_server_knows() {
        let mut out = String::new();
        write_string(&mut out, "a\"b\\c\nd\te\rf\u{1}g\u{7f}h$i{j}k#l//mé");
        assert_eq!(out, r#""a\"b\\c\nd\te\rf\x01g\x7fh$i{j}k#l//mé""#);
    }

    #[test]
    fn odd_keys_are_refused() {
        #[derive(Serialize)]
        struct Bad {
            include: i32,
        }
        assert!(matches!(
            to_conf(&Bad { include: 1 }),
            Err(ConfError::Key(_))
        ));
    }
}
