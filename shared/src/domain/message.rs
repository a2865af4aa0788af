//! The texts people send and receive: the initial message (Graph's length limit, the `{first_name}`
//! template) and the stop words (a message that means "stop messaging me").

/// Words that, alone in a message, mean "stop messaging me" (compared case-insensitively, without
/// surrounding punctuation). English, Spanish, Portuguese, French, German, Italian, Dutch.
pub const DEFAULT_STOP_KEYWORDS: &[&str] = &[
    "stop",
    "unsubscribe",
    "cancel",
    "quit",
    "end",
    "opt out",
    "optout",
    "parar",
    "para",
    "baja",
    "cancelar",
    "detener",
    "sair",
    "arrêter",
    "arreter",
    "arrêt",
    "stopp",
    "abmelden",
    "basta",
    "annulla",
    "disiscriviti",
    "afmelden",
];

/// Whether `text` is an opt-out request: one of `keywords`, alone, in any case, with surrounding
/// whitespace and punctuation ignored ("Stop!", " STOP. ").
pub fn is_stop_request(text: &str, keywords: &[String]) -> bool {
    let normalized: String = text
        .trim()
        .trim_matches(|c: char| {
            c.is_ascii_punctuation() || c.is_whitespace() || c == '¡' || c == '¿'
        })
        .to_lowercase();
    let normalized = normalized.split_whitespace().collect::<Vec<_>>().join(" ");
    !normalized.is_empty() && keywords.iter().any(|k| k.to_lowercase() == normalized)
}

/// The Send API's limit for `message.text`: "less than 2000" characters, so 1999 at most.
pub const MAX_MESSAGE_TEXT_CHARS: usize = 1999;

/// The placeholder `INITIAL_MESSAGE_TEXT` may contain.
pub const FIRST_NAME_PLACEHOLDER: &str = "{first_name}";
/// First names longer than this are not used in messages.
pub const MAX_FIRST_NAME_CHARS: usize = 64;

/// A first name fit for a message: trimmed, without control characters, not too long.
pub fn clean_first_name(name: Option<&str>) -> Option<String> {
    let name: String = name?.chars().filter(|c| !c.is_control()).collect();
    let name = name.trim();
    (!name.is_empty() && name.chars().count() <= MAX_FIRST_NAME_CHARS).then(|| name.to_owned())
}

/// The initial message: `template` with every `{first_name}` replaced by the person's first name,
/// or by `fallback` when it is unknown (or would make the text longer than Graph accepts).
pub fn render_initial_message(template: &str, first_name: Option<&str>, fallback: &str) -> String {
    if !template.contains(FIRST_NAME_PLACEHOLDER) {
        return template.to_owned();
    }
    if let Some(name) = clean_first_name(first_name) {
        let text = template.replace(FIRST_NAME_PLACEHOLDER, &name);
        if text.chars().count() <= MAX_MESSAGE_TEXT_CHARS {
            return text;
        }
    }
    template.replace(FIRST_NAME_PLACEHOLDER, fallback)
}

/// A configuration problem when `template` rendered with `fallback` would not fit Graph's limit.
/// Checked at load, so the fallback is always a text Graph takes: a first name that would not fit
/// falls back to it (a truncated name would be a wrong name).
pub fn rendered_length_problem(template: &str, fallback: &str) -> Option<String> {
    let max = MAX_MESSAGE_TEXT_CHARS;
    let chars = render_initial_message(template, None, fallback)
        .chars()
        .count();
    (chars > max && needs_first_name(template)).then(|| {
        format!(
            "INITIAL_MESSAGE_TEXT with {FIRST_NAME_PLACEHOLDER} replaced by FIRST_NAME_FALLBACK is {chars} characters; Graph takes at most {max}"
        )
    })
}

/// Whether a message template needs the person's first name (saves a read when it does not).
pub fn needs_first_name(template: &str) -> bool {
    template.contains(FIRST_NAME_PLACEHOLDER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_requests_are_recognised_in_any_case_and_language_but_not_inside_sentences() {
        let keywords: Vec<String> = DEFAULT_STOP_KEYWORDS
            .iter()
            .map(|s| s.to_string())
            .collect();
        for yes in [
            "stop",
            "STOP",
            " Stop! ",
            "Unsubscribe.",
            "baja",
            "Arrêter",
            "ABMELDEN",
            "opt  out",
            "¡Basta!",
        ] {
            assert!(is_stop_request(yes, &keywords), "{yes}");
        }
        for no in [
            "",
            "!!!",
            "please don't stop",
            "stopwatch",
            "hello",
            "stop it now",
        ] {
            assert!(!is_stop_request(no, &keywords), "{no}");
        }
        assert!(is_stop_request("halt", &["HALT".to_string()]));
    }

    #[test]
    fn first_name_is_rendered_with_a_fallback() {
        let t = "Hi {first_name}, thanks!";
        assert_eq!(
            render_initial_message(t, Some("Ana"), "there"),
            "Hi Ana, thanks!"
        );
        assert_eq!(
            render_initial_message(t, None, "there"),
            "Hi there, thanks!"
        );
        assert_eq!(
            render_initial_message(t, Some("  \u{7}  "), "there"),
            "Hi there, thanks!"
        );
        let long = "x".repeat(MAX_FIRST_NAME_CHARS + 1);
        assert_eq!(
            render_initial_message(t, Some(&long), "there"),
            "Hi there, thanks!"
        );
        assert_eq!(render_initial_message("Plain", Some("Ana"), "x"), "Plain");
        let near_limit = format!("{}{{first_name}}", "y".repeat(1995));
        assert_eq!(
            render_initial_message(&near_limit, Some("Anastasia"), "you"),
            format!("{}you", "y".repeat(1995))
        );
        // "Less than 2000": a name that makes exactly 2000 falls back; 1999 keeps it.
        let at_limit = format!("{}{{first_name}}", "y".repeat(1996));
        assert_eq!(
            render_initial_message(&at_limit, Some("Anna"), "you"),
            format!("{}you", "y".repeat(1996))
        );
        assert_eq!(
            render_initial_message(&at_limit, Some("Ann"), "you"),
            format!("{}Ann", "y".repeat(1996))
        );
        assert_eq!(rendered_length_problem(&at_limit, "you"), None);
        assert!(rendered_length_problem(&at_limit, "four").is_some());
        assert_eq!(rendered_length_problem("Plain", "x"), None);
        assert!(needs_first_name(t) && !needs_first_name("Plain"));
    }
}
