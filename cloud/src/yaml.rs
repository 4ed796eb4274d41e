//! YAML errors as kiln shows them: the position once, in front, and the fix after.

/// A serde_yaml_ng error's message without the " at line L column C" it writes into it:
/// messages show the location once, in front.
pub fn without_location(error: &serde_yaml_ng::Error) -> String {
    let mut text = error.to_string();
    while let Some(start) = text.find(" at line ") {
        let rest = &text[start + " at line ".len()..];
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let line_len = digits(rest);
        let Some(after) = rest[line_len..].strip_prefix(" column ") else {
            break;
        };
        let end = start + " at line ".len() + line_len + " column ".len() + digits(after);
        text.replace_range(start..end, "");
    }
    // serde names the Rust type a mapping was expected for; the reader wrote YAML.
    while let Some(start) = text.find("expected struct ") {
        let name = &text[start + "expected struct ".len()..];
        let len = name
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(name.len());
        let end = start + "expected struct ".len() + len;
        text.replace_range(start..end, "expected a mapping of `key: value` lines");
    }
    text
}

/// 1-based (line, column) of a byte offset; the column counts characters.
pub fn position_of(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The fix for YAML that does not parse.
pub const SYNTAX_HINT: &str =
    "fix the YAML at this position (indentation, a missing `:`, unbalanced brackets or quotes)";

/// The fix for a YAML error of a file whose every key is checked.
pub fn hint(message: &str) -> &'static str {
    if message.contains("unknown field") {
        "remove the key or fix its spelling; the expected keys are listed above"
    } else if message.contains("missing field") {
        "add the missing key"
    } else if message.contains("expected a duration") {
        "write a duration such as `90s`, `10m` or `1h 30m`"
    } else if message.contains("invalid type") {
        "give the value the type shown above"
    } else if message.contains("unknown variant") {
        "use one of the values listed above"
    } else {
        SYNTAX_HINT
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_rust_type_is_not_named_to_the_reader() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct PipelineFile {
            image: String,
        }
        let error = serde_yaml_ng::from_str::<PipelineFile>("- a\n- b\n").expect_err("a list");
        assert_eq!(
            super::without_location(&error),
            "invalid type: sequence, expected a mapping of `key: value` lines"
        );
    }

    #[test]
    fn the_position_is_taken_out_of_the_message() {
        let error = serde_yaml_ng::from_str::<std::collections::BTreeMap<String, u8>>("a: x")
            .expect_err("not a number");
        assert!(error.to_string().contains(" at line 1 column 4"), "{error}");
        assert_eq!(
            super::without_location(&error),
            "a: invalid type: string \"x\", expected u8"
        );
    }
}
