//! Class-name normalisation for prompts: `ApplyEyeMakeup` → `apply eye makeup`,
//! `brush_hair` → `brush hair`. The reference feeds names verbatim (UCF names stay CamelCase), so
//! normalisation is an option of the text inits, not a default.

/// Splits CamelCase into words, turns `_` and `-` into spaces, lower-cases, and collapses
/// whitespace. Acronyms stay together (`YoYo` → `yo yo`, `PlayingDaf` → `playing daf`,
/// `TaiChi` → `tai chi`, `JumpingJack` → `jumping jack`, `HandstandPushups` → `handstand pushups`).
pub fn normalize(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' || c == '-' || c.is_whitespace() {
            out.push(' ');
            continue;
        }
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push(' ');
            }
        }
        out.extend(c.to_lowercase());
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn names() {
        for (raw, want) in [
            ("ApplyEyeMakeup", "apply eye makeup"),
            ("YoYo", "yo yo"),
            ("brush_hair", "brush hair"),
            ("hurling (sport)", "hurling (sport)"),
            ("PlayingDaf", "playing daf"),
            ("BoxingPunchingBag", "boxing punching bag"),
            ("UFCFight", "ufc fight"),
            ("Making a sandwich", "making a sandwich"),
        ] {
            assert_eq!(normalize(raw), want, "{raw}");
        }
    }
}
