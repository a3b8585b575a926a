//! Rules for free text: what a clinical record (and FHIR, which forbids U+0000–U+001F) may hold.
//!
//! Control characters (NUL, ESC, BEL, DEL, C1 controls) are refused everywhere; line feed and tab only in
//! text meant to span lines (notes, comments, conclusions). A name must show something once trimmed: blank
//! or invisible characters alone (zero-width spaces, soft hyphens, the BOM) are no name.

/// Characters that take no room on screen.
fn invisible(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

fn check(value: &str, multi_line: bool) -> garde::Result {
    match value
        .chars()
        .find(|c| c.is_control() && !(multi_line && matches!(c, '\n' | '\t')))
    {
        Some(c) => Err(garde::Error::new(format!(
            "must not contain control characters (found U+{:04X}){}",
            u32::from(c),
            if multi_line {
                "; line feeds and tabs are allowed"
            } else {
                ""
            }
        ))),
        None => Ok(()),
    }
}

/// One line of text: no control characters at all.
///
/// # Errors
/// Naming the first control character.
pub fn single_line(value: &str, _: &()) -> garde::Result {
    check(value, false)
}

/// Text that may span lines: no control characters but line feed and tab.
///
/// # Errors
/// Naming the first other control character.
pub fn multi_line(value: &str, _: &()) -> garde::Result {
    check(value, true)
}

/// A name: one line that shows at least one visible character.
///
/// # Errors
/// For control characters, or a value that is blank or invisible once trimmed.
pub fn name(value: &str, ctx: &()) -> garde::Result {
    single_line(value, ctx)?;
    if value.chars().all(invisible) {
        return Err(garde::Error::new("must contain a visible character"));
    }
    Ok(())
}

/// Text that may span lines and must show something.
///
/// # Errors
/// For control characters other than line feed and tab, or a blank value.
pub fn visible_text(value: &str, ctx: &()) -> garde::Result {
    multi_line(value, ctx)?;
    if value.chars().all(invisible) {
        return Err(garde::Error::new("must contain a visible character"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_and_lines_only_where_text_spans_them() {
        assert!(single_line("Ada Lovelace", &()).is_ok());
        for bad in [
            "a\u{0}b",
            "a\u{1b}[31m",
            "bell\u{7}",
            "del\u{7f}",
            "c1\u{85}",
            "line\nfeed",
            "tab\t",
        ] {
            assert!(single_line(bad, &()).is_err(), "{bad:?}");
        }
        assert!(multi_line("first\nsecond\tcolumn", &()).is_ok());
        assert!(multi_line("carriage\r\nreturn", &()).is_err());
        assert!(multi_line("nul\u{0}", &()).is_err());
    }

    #[test]
    fn a_name_must_show_something() {
        assert!(name("Zoë", &()).is_ok());
        for bad in ["", "   ", "\u{200B}", " \u{FEFF}\u{00AD} "] {
            assert!(name(bad, &()).is_err(), "{bad:?}");
        }
        assert!(visible_text(" \n\t ", &()).is_err());
    }
}
