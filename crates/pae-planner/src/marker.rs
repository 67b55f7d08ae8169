//! Step markers at the start of a line: `1.`, `1)`, `(1)`, `Step 1:`,
//! `**1.**`, `①`, `一、`, bullets, and the digits and step words of the
//! scripts models write in. A leaf module: the text parser's lexer and the
//! JSON plan parser (which drops a step's own numbering) both read markers
//! with it.

/// A run of more digits than this is not a step number (it is text).
const MAX_NUMBER_DIGITS: usize = 9;

/// Zero-width and direction marks: invisible, and never part of a marker.
pub(crate) fn is_format_mark(c: char) -> bool {
    matches!(
        c,
        '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
            | '\u{061c}'
            | '\u{180e}'
    )
}

/// Whitespace or an invisible mark.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() || is_format_mark(c)
}

/// `s` without whitespace and invisible marks at either end.
pub(crate) fn trim_space(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// The value of a decimal digit in one of the scripts models write numbers
/// in: ASCII, Arabic-Indic, Extended Arabic-Indic, Devanagari, fullwidth.
pub(crate) fn digit_value(c: char) -> Option<u64> {
    const ZEROS: [u32; 5] = [0x30, 0x660, 0x6F0, 0x966, 0xFF10];
    let code = u32::from(c);
    ZEROS
        .iter()
        .find(|&&zero| (zero..zero + 10).contains(&code))
        .map(|&zero| u64::from(code - zero))
}

/// The text after a step word at the start of `s` (`Step 1`, `Paso #2`,
/// `步骤1`), from the number on; `None` unless a number follows the word.
pub(crate) fn strip_step_word(s: &str) -> Option<&str> {
    let first = *s.as_bytes().first()?;
    // Every step word starts with a letter: a line that starts with an
    // ASCII digit or sign (a numbered line, most lines) has none.
    if first.is_ascii() && !first.is_ascii_alphabetic() {
        return None;
    }
    // An ASCII character lowercases to an ASCII one, so text that starts
    // with one cannot start with a word that starts with another character.
    let ascii_start = first.is_ascii();
    STEP_WORDS.iter().find_map(|word| {
        if ascii_start && !word.as_bytes().first().is_some_and(u8::is_ascii) {
            return None;
        }
        let head = s.get(..word.len())?;
        // Compared a character at a time: no lowercased copy of every line
        // for every word (no step word has a final sigma, the one place
        // where lowercasing a string differs from lowercasing its chars).
        let same = if word.is_ascii() {
            head.eq_ignore_ascii_case(word)
        } else {
            head.chars().flat_map(char::to_lowercase).eq(word.chars())
        };
        if !same {
            return None;
        }
        let rest = s[word.len()..].trim_start_matches(is_space);
        let rest = rest.strip_prefix('#').unwrap_or(rest);
        rest.starts_with(|c| digit_value(c).is_some() || cjk_digit(c).is_some())
            .then_some(rest)
    })
}

/// The value of a Chinese numeral character from 1 to 9.
fn cjk_digit(c: char) -> Option<u64> {
    "一二三四五六七八九"
        .chars()
        .position(|d| d == c)
        .and_then(|p| u64::try_from(p + 1).ok())
        .or_else(|| (c == '两').then_some(2))
}

/// Reads a Chinese number from 1 to 99 (`三`, `十二`, `二十一`) at the start
/// of `s`: its value and the rest of `s`.
fn cjk_number(s: &str) -> Option<(u64, &str)> {
    let mut chars = s.char_indices().peekable();
    let (_, first) = chars.next()?;
    let mut end = first.len_utf8();
    let mut value = if first == '十' { 1 } else { cjk_digit(first)? };
    if first == '十' || chars.next_if(|&(_, c)| c == '十').is_some() {
        value *= 10;
        end = chars.peek().map_or(s.len(), |&(i, _)| i);
        if let Some((i, c)) = chars.next()
            && let Some(d) = cjk_digit(c)
        {
            value += d;
            end = i + c.len_utf8();
        }
    }
    Some((value, &s[end..]))
}

/// A circled or negative-circled number (`①` to `⑳`, `❶` to `❿`).
fn circled_number(c: char) -> Option<u64> {
    let code = u32::from(c);
    let (first, last) = match code {
        0x2460..=0x2473 => (0x2460, 0x2473),
        0x2776..=0x277f => (0x2776, 0x277f),
        0x2780..=0x2789 => (0x2780, 0x2789),
        _ => return None,
    };
    (first..=last)
        .contains(&code)
        .then(|| u64::from(code - first + 1))
}

/// Reads a step number at the start of `s`: its value and the rest of `s`.
pub(crate) fn leading_number(s: &str) -> Option<(u64, &str)> {
    let mut value: u64 = 0;
    let mut digits = 0;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        let Some(d) = digit_value(c) else { break };
        digits += 1;
        if digits > MAX_NUMBER_DIGITS {
            return None;
        }
        value = value * 10 + d;
        end = i + c.len_utf8();
    }
    (digits > 0).then(|| (value, &s[end..]))
}

/// Delimiters after a bare step number: `1.`, `1)`, `1:`, fullwidth forms.
const NUMBER_DELIMITERS: [char; 7] = ['.', ')', ':', '．', '）', '：', '、'];
/// Delimiters after `Step 1` or `#1`.
pub(crate) const STEP_DELIMITERS: [char; 10] =
    [':', '.', ')', '-', '–', '—', '：', '．', '，', '、'];
/// Words that label a step number (`Step 1:`, `Paso 1:`, `Étape 1 :`), in
/// lowercase: the languages models answer in when the objective is in them.
const STEP_WORDS: [&str; 15] = [
    "step",
    "paso",
    "passo",
    "étape",
    "etape",
    "schritt",
    "stap",
    "krok",
    "шаг",
    "adım",
    "adim",
    "ステップ",
    "步骤",
    "الخطوة",
    "चरण",
];
/// Dashes that delimit a bare number when whitespace follows (`1 - a`).
pub(crate) const DASHES: [char; 3] = ['-', '–', '—'];
/// Bullet characters of markdown and of models imitating it.
const BULLETS: [char; 10] = ['-', '*', '+', '•', '–', '—', '‣', '◦', '▪', '●'];

/// How a numbered marker is written; a list keeps the style of its first
/// step, so markers of another style inside it are sub-items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Style {
    /// `Step 1:` or `#1`, not a bare `1.`.
    pub(crate) labelled: bool,
    /// On a markdown heading line (`### 1. ...`).
    pub(crate) heading: bool,
}

impl Style {
    /// Whether a marker of style `other` can be a step of a list of this
    /// style. Sub-lists are bare numbers, so headings only tell bare lists
    /// apart (`## 1. Research` over `1. Find flights`).
    pub(crate) fn same_list(self, other: Self) -> bool {
        self.labelled == other.labelled && (self.labelled || self.heading == other.heading)
    }
}

#[derive(Debug)]
pub(crate) struct Marker {
    /// `None` for a bullet.
    pub(crate) number: Option<u64>,
    pub(crate) title: String,
    pub(crate) style: Style,
    /// A markdown heading or a line entirely in bold: the step's text may
    /// follow as a paragraph.
    pub(crate) heading_like: bool,
}

/// The number (`None` for a bullet) and text of a step marker at the start
/// of `s`, if `s` starts with one.
pub(crate) fn step_marker(s: &str) -> Option<(Option<u64>, String)> {
    parse_marker(trim_space(s)).map(|m| (m.number, m.title))
}

/// Reads a step marker at the start of a line's content.
pub(crate) fn parse_marker(content: &str) -> Option<Marker> {
    let mut rest = content;
    let mut heading = false;
    let mut hash_label = false;
    if rest.starts_with('#') {
        let after = rest.trim_start_matches('#');
        if after.starts_with(is_space) {
            heading = true;
            rest = after.trim_start_matches(is_space);
        } else if rest.len() - after.len() == 1 && after.starts_with(|c| digit_value(c).is_some()) {
            // "#1: Search", "#2 - Answer".
            hash_label = true;
            rest = after;
        } else {
            return None;
        }
    }
    let bullet = if hash_label { None } else { strip_bullet(rest) };
    if let Some(after) = bullet {
        rest = after;
    }
    let bold_line = ["**", "__"].iter().any(|token| {
        rest.starts_with(token)
            && rest.len() > 2 * token.len()
            && rest.trim_end_matches([':', '：']).ends_with(token)
    });
    if let Some((number, title, labelled)) = parse_numbered(rest, hash_label) {
        return Some(Marker {
            number: Some(number),
            title,
            style: Style { labelled, heading },
            heading_like: heading || bold_line,
        });
    }
    if hash_label {
        return None;
    }
    bullet.map(|title| Marker {
        number: None,
        title: trim_space(title).to_owned(),
        style: Style {
            labelled: false,
            heading,
        },
        heading_like: heading || bold_line,
    })
}

/// The text after a bullet and its whitespace, or `None` when `s` does not
/// start with a bullet item.
fn strip_bullet(s: &str) -> Option<&str> {
    let mut chars = s.chars();
    let first = chars.next()?;
    if !BULLETS.contains(&first) {
        return None;
    }
    let after = chars.as_str();
    if !after.starts_with(is_space) {
        // "**bold**", "-5 degrees", "---"
        return None;
    }
    let after = after.trim_start_matches(is_space);
    let after = ["[ ]", "[x]", "[X]"]
        .iter()
        .find_map(|b| after.strip_prefix(b))
        .map_or(after, |a| a.trim_start_matches(is_space));
    // A horizontal rule ("* * *") or a lone bullet is not a step.
    if after.chars().all(|c| is_space(c) || BULLETS.contains(&c)) {
        return None;
    }
    Some(after)
}

/// Reads `1.`, `1)`, `(1)`, `Step 1:`, `**1.**` and their variants (`s` is
/// after `#` when `hash_label`): the number, the title, and whether the
/// marker is labelled (`Step` or `#`).
fn parse_numbered(s: &str, hash_label: bool) -> Option<(u64, String, bool)> {
    let mut rest = s;
    let bold = ["**", "__"]
        .into_iter()
        .find(|token| !hash_label && rest.starts_with(token));
    if let Some(token) = bold {
        rest = &rest[token.len()..];
    }
    let mut labelled = hash_label;
    if let Some(after) = strip_step_word(rest) {
        rest = after;
        labelled = true;
    }
    // "第1步：" and "第一步，" (Chinese "step N").
    let ordinal = !labelled && rest.starts_with('第');
    if ordinal {
        rest = &rest['第'.len_utf8()..];
        labelled = true;
    }
    let paren = !labelled && rest.starts_with('(');
    if paren {
        rest = &rest[1..];
    }
    let mut circled = false;
    let (number, after) = if let Some(n) = rest.chars().next().and_then(circled_number) {
        circled = true;
        (n, &rest[rest.chars().next().map_or(0, char::len_utf8)..])
    } else if let Some(read) = leading_number(rest) {
        read
    } else {
        // Chinese numerals: after a step word, or before "、" ("一、搜索").
        let (n, after) = cjk_number(rest)?;
        if !labelled && !after.starts_with('、') {
            return None;
        }
        (n, after)
    };
    rest = after;
    if ordinal {
        rest = rest.strip_prefix('步')?;
    }
    if labelled
        && let Some(total) = rest.strip_prefix('/')
        && total.starts_with(|c: char| c.is_ascii_digit())
    {
        // "Step 1/3: Search".
        rest = total.trim_start_matches(|c: char| c.is_ascii_digit());
    }

    let delimiters: &[char] = if labelled {
        &STEP_DELIMITERS
    } else {
        &NUMBER_DELIMITERS
    };
    // "Step 1 - x" and "Step 1 : x" put spaces before the delimiter; "1 - x"
    // and "1- x" delimit a bare number with a dash.
    fn strip_delimiter<'s>(s: &'s str, labelled: bool, delimiters: &[char]) -> Option<&'s str> {
        if labelled {
            return s.trim_start_matches(is_space).strip_prefix(delimiters);
        }
        if let Some(after) = s.strip_prefix(delimiters) {
            // "1.-" and "1.)" (Spanish and other styles).
            return Some(
                after
                    .strip_prefix(['-', ')'])
                    .filter(|a| a.starts_with(is_space))
                    .unwrap_or(after),
            );
        }
        s.trim_start_matches(is_space)
            .strip_prefix(DASHES)
            .filter(|a| a.starts_with(is_space))
    }
    let mut delimited = circled;
    if circled {
        // "① Search"; a delimiter after it ("①. Search") is dropped too.
        if let Some(after) = strip_delimiter(rest, true, delimiters) {
            rest = after;
        }
    } else if paren {
        rest = rest.strip_prefix([')', '）'])?;
        delimited = true;
    } else if let Some(after) = rest
        .strip_prefix('\u{fe0f}')
        .unwrap_or(rest)
        .strip_prefix('\u{20e3}')
    {
        // A keycap emoji: "1️⃣ Search".
        rest = after;
        delimited = true;
    } else if let Some(after) = strip_delimiter(rest, labelled, delimiters) {
        rest = after;
        delimited = true;
    }
    let mut bold_open = bold;
    if let Some(token) = bold
        && let Some(after) = rest.strip_prefix(token)
    {
        rest = after;
        bold_open = None;
        if !delimited && let Some(after) = strip_delimiter(rest, labelled, delimiters) {
            rest = after;
            delimited = true;
        }
    }
    if !delimited && !labelled {
        return None;
    }
    match rest.chars().next() {
        None => {}
        Some(c) if is_space(c) => {}
        // "1.Search" (no space), but not "1.5" or "1.1".
        Some(c) if delimited && c.is_alphabetic() => {}
        Some(_) => return None,
    }
    let mut title = trim_space(rest).to_owned();
    if let Some(token) = bold_open {
        // "**1. Search the web**" or "**Step 1: Search** the web".
        if let Some(pos) = title.find(token) {
            title.replace_range(pos..pos + token.len(), "");
            title = trim_space(&title).to_owned();
        }
    }
    Some((number, title, labelled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_word_starts_with_a_letter() {
        // strip_step_word skips lines that start with an ASCII non-letter.
        for word in STEP_WORDS {
            assert!(word.starts_with(char::is_alphabetic), "{word}");
        }
    }

    #[test]
    fn step_words_in_every_script_and_case() {
        for (text, rest) in [
            ("Step 1: a", "1: a"),
            ("ÉTAPE 2 a", "2 a"),
            ("étape #3", "3"),
            ("Шаг 4", "4"),
            ("ADIM 5", "5"),
            ("Adım 6", "6"),
            ("ステップ7", "7"),
            ("步骤 8", "8"),
            ("الخطوة 9", "9"),
            ("चरण 1", "1"),
        ] {
            assert_eq!(strip_step_word(text), Some(rest), "{text}");
        }
        for text in ["1. Step 2", "Steps 2", "step x", "", "шагать 2"] {
            assert_eq!(strip_step_word(text), None, "{text}");
        }
    }

    #[test]
    fn markers_and_non_markers() {
        let marker = |s: &str| parse_marker(s).map(|m| (m.number, m.title));
        assert_eq!(marker("1. a"), Some((Some(1), "a".into())));
        assert_eq!(marker("12) a"), Some((Some(12), "a".into())));
        assert_eq!(marker("(3) a"), Some((Some(3), "a".into())));
        assert_eq!(marker("Step 4: a"), Some((Some(4), "a".into())));
        assert_eq!(marker("STEP 4 - a"), Some((Some(4), "a".into())));
        assert_eq!(marker("**5.** a"), Some((Some(5), "a".into())));
        assert_eq!(marker("**5. a**"), Some((Some(5), "a".into())));
        assert_eq!(marker("**Step 6:** a"), Some((Some(6), "a".into())));
        assert_eq!(marker("**Step 6**: a"), Some((Some(6), "a".into())));
        assert_eq!(marker("### Step 7: a"), Some((Some(7), "a".into())));
        assert_eq!(marker("- 8. a"), Some((Some(8), "a".into())));
        assert_eq!(marker("- a"), Some((None, "a".into())));
        assert_eq!(marker("- [ ] a"), Some((None, "a".into())));
        assert_eq!(marker("1.Search"), Some((Some(1), "Search".into())));
        assert_eq!(marker("١. أ"), Some((Some(1), "أ".into())));
        assert_eq!(marker("１．検索"), Some((Some(1), "検索".into())));
        assert_eq!(marker("1."), Some((Some(1), String::new())));
        assert_eq!(marker("1 - a"), Some((Some(1), "a".into())));
        assert_eq!(marker("2.- a"), Some((Some(2), "a".into())));
        assert_eq!(marker("#3: a"), Some((Some(3), "a".into())));
        assert_eq!(marker("4\u{fe0f}\u{20e3} a"), Some((Some(4), "a".into())));
        assert_eq!(marker("⑤ a"), Some((Some(5), "a".into())));
        assert_eq!(marker("Step 6/9: a"), Some((Some(6), "a".into())));
        assert_eq!(marker("Paso #7: a"), Some((Some(7), "a".into())));
        assert_eq!(marker("第十二步：a"), Some((Some(12), "a".into())));
        assert_eq!(marker("二十一、a"), Some((Some(21), "a".into())));
        assert_eq!(
            marker("\u{200f}8. a"),
            None,
            "marks are trimmed by the caller"
        );
        for text in [
            "1.1 sub",
            "3.14 is pi",
            "2024 was",
            "**bold** text",
            "-5 degrees",
            "---",
            "* * *",
            "#tag",
            "Stepping",
            "1234567890. x",
            "10:30 meeting",
            "1 -5 degrees",
            "#hashtag",
            "#2024was",
            "一个",
            "第一",
            "Steps 2",
        ] {
            assert_eq!(marker(text), None, "{text:?}");
        }
    }
}
