//! What agents call themselves, read with suspicion: a name is
//! self-asserted, so the app folds look-alike letters to compare names
//! and warns of characters that deceive.

/// What is suspicious about a self-asserted name: invisible or
/// direction-changing characters, and letters from several scripts (a
/// homoglyph attack such as Cyrillic `а` in `pаypal`).
pub fn name_warnings(name: &str) -> Vec<String> {
    let mut warnings = Vec::new();
    if name.chars().any(|c| {
        matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
    }) {
        warnings.push("the name holds characters that reverse how text reads".into());
    }
    if name
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}'))
    {
        warnings.push("the name holds invisible characters".into());
    }
    let mut scripts = name.chars().filter_map(script_of).collect::<Vec<_>>();
    scripts.sort_unstable();
    scripts.dedup();
    if scripts.len() > 1 {
        warnings.push(
            "the name mixes alphabets (Latin, Cyrillic, Greek): letters may only look alike".into(),
        );
    }
    warnings
}

/// The alphabet of a letter, for the scripts homoglyph attacks use.
fn script_of(c: char) -> Option<&'static str> {
    match c {
        'a'..='z' | 'A'..='Z' | '\u{00c0}'..='\u{024f}' => Some("latin"),
        '\u{0370}'..='\u{03ff}' => Some("greek"),
        '\u{0400}'..='\u{052f}' => Some("cyrillic"),
        '\u{0530}'..='\u{058f}' => Some("armenian"),
        _ => None,
    }
}

/// A name folded for comparison: lowercase, with the common Cyrillic and
/// Greek look-alikes mapped to the Latin letters they imitate, and
/// invisible characters dropped. Two names with one skeleton look the same.
pub fn skeleton(name: &str) -> String {
    name.chars()
        .filter(|c| {
            !(c.is_control()
                || matches!(*c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}'))
        })
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'а' | 'α' => 'a',
            'е' | 'ε' => 'e',
            'о' | 'ο' | '0' => 'o',
            'р' | 'ρ' => 'p',
            'с' | 'ϲ' => 'c',
            'у' | 'γ' => 'y',
            'х' | 'χ' => 'x',
            'і' | 'ι' | 'l' | '1' => 'i',
            'ѕ' => 's',
            'ј' => 'j',
            'ԁ' => 'd',
            'ɡ' => 'g',
            'к' | 'κ' => 'k',
            'м' => 'm',
            'н' | 'η' => 'n',
            'т' | 'τ' => 't',
            'в' | 'β' => 'b',
            'ν' => 'v',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_deceive_are_flagged() {
        assert!(name_warnings("Report Bot").is_empty());
        assert_eq!(
            name_warnings("p\u{0430}ypal").len(),
            1,
            "Cyrillic a among Latin"
        );
        assert!(name_warnings("evil\u{202e}gpj.exe")[0].contains("reverse"));
        assert!(name_warnings("a\u{200b}b")[0].contains("invisible"));
        assert_eq!(skeleton("P\u{0430}yPal"), skeleton("paypal"));
        assert_ne!(skeleton("paypal"), skeleton("payment"));
    }
}
