//! The embedded fonts (see `fonts/README.md`), glyph lookup with fallback, and text
//! measurement from the fonts' own advance widths.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use printpdf::ParsedFont;

use super::PdfError;

static REGULAR_TTF: &[u8] = include_bytes!("../../fonts/DejaVuSans.ttf");
static BOLD_TTF: &[u8] = include_bytes!("../../fonts/DejaVuSans-Bold.ttf");
static CJK_TTF: &[u8] = include_bytes!("../../fonts/DroidSansFallbackFull.ttf");

/// Drawn for a character that no embedded font has.
const REPLACEMENT: char = '\u{FFFD}';

/// Text weight asked for by the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Weight {
    Regular,
    Bold,
}

/// One of the embedded faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Face {
    Regular,
    Bold,
    Cjk,
}

/// A parsed face with its units per em.
pub(crate) struct LoadedFace {
    pub(crate) parsed: ParsedFont,
    units_per_em: f32,
}

impl LoadedFace {
    fn load(bytes: &[u8], name: &'static str) -> Result<Self, PdfError> {
        let mut warnings = Vec::new();
        let parsed = ParsedFont::from_bytes(bytes, 0, &mut warnings).ok_or(PdfError::Font(name))?;
        if parsed.codepoint_to_glyph.is_empty() {
            return Err(PdfError::Font(name));
        }
        let units_per_em = f32::from(parsed.units_per_em.max(1));
        Ok(Self {
            parsed,
            units_per_em,
        })
    }

    fn has(&self, c: char) -> bool {
        self.parsed.codepoint_to_glyph.contains_key(&u32::from(c))
    }

    /// Advance width of `c` in em (0 for a character the face lacks).
    fn advance_em(&self, c: char) -> f32 {
        self.parsed
            .codepoint_to_glyph
            .get(&u32::from(c))
            .and_then(|gid| self.parsed.glyph_widths.get(gid))
            .map_or(0.0, |w| f32::from(*w) / self.units_per_em)
    }
}

impl LoadedFace {
    /// A font holding only the glyphs of `chars` (and .notdef), renumbered, with a
    /// Unicode cmap for them; the whole face if subsetting fails.
    pub(crate) fn subset(&self, chars: &BTreeSet<char>) -> ParsedFont {
        self.try_subset(chars)
            .unwrap_or_else(|| self.parsed.clone())
    }

    fn try_subset(&self, chars: &BTreeSet<char>) -> Option<ParsedFont> {
        use allsorts::binary::read::ReadScope;
        use allsorts::font_data::FontData;
        use allsorts::subset::{subset, CmapTarget, SubsetProfile};

        let used: BTreeSet<u16> = chars
            .iter()
            .filter_map(|c| self.parsed.codepoint_to_glyph.get(&u32::from(*c)).copied())
            .filter(|gid| *gid != 0)
            .collect();
        // .notdef first, as the subsetter requires.
        let ids: Vec<u16> = std::iter::once(0).chain(used).collect();
        let scope = ReadScope::new(&self.parsed.original_bytes);
        let data = scope.read::<FontData<'_>>().ok()?;
        let provider = data.table_provider(0).ok()?;
        let bytes = subset(&provider, &ids, &SubsetProfile::Pdf, CmapTarget::Unicode).ok()?;
        let mut warnings = Vec::new();
        let parsed = ParsedFont::from_bytes(&bytes, 0, &mut warnings)?;
        // Every character must still map to a glyph, or text would be lost.
        chars
            .iter()
            .all(|c| parsed.codepoint_to_glyph.contains_key(&u32::from(*c)))
            .then_some(parsed)
    }
}

/// The three embedded faces, parsed once per process.
pub(crate) struct FontSet {
    pub(crate) regular: LoadedFace,
    pub(crate) bold: LoadedFace,
    pub(crate) cjk: LoadedFace,
}

static FONTS: LazyLock<Result<FontSet, PdfError>> = LazyLock::new(|| {
    Ok(FontSet {
        regular: LoadedFace::load(REGULAR_TTF, "DejaVu Sans")?,
        bold: LoadedFace::load(BOLD_TTF, "DejaVu Sans Bold")?,
        cjk: LoadedFace::load(CJK_TTF, "Droid Sans Fallback")?,
    })
});

/// The process-wide font set (parsing the fonts takes tens of milliseconds, so it is
/// done once).
pub(crate) fn fonts() -> Result<&'static FontSet, PdfError> {
    FONTS.as_ref().map_err(Clone::clone)
}

impl FontSet {
    pub(crate) fn face(&self, face: Face) -> &LoadedFace {
        match face {
            Face::Regular => &self.regular,
            Face::Bold => &self.bold,
            Face::Cjk => &self.cjk,
        }
    }

    /// The face that draws `c` in `weight`, and the character actually drawn
    /// (U+FFFD when no face has it).
    pub(crate) fn resolve(&self, c: char, weight: Weight) -> (Face, char) {
        let primary = match weight {
            Weight::Regular => Face::Regular,
            Weight::Bold => Face::Bold,
        };
        if self.face(primary).has(c) {
            (primary, c)
        } else if self.cjk.has(c) {
            (Face::Cjk, c)
        } else {
            (primary, REPLACEMENT)
        }
    }

    /// Width of `text` in points at `size`.
    pub(crate) fn width(&self, text: &str, weight: Weight, size: f32) -> f32 {
        text.chars()
            .map(|c| {
                let (face, c) = self.resolve(c, weight);
                self.face(face).advance_em(c)
            })
            .sum::<f32>()
            * size
    }

    /// Splits `text` into maximal runs drawn with one face each.
    pub(crate) fn runs(&self, text: &str, weight: Weight) -> Vec<(Face, String)> {
        let mut runs: Vec<(Face, String)> = Vec::new();
        for c in text.chars() {
            let (face, c) = self.resolve(c, weight);
            match runs.last_mut() {
                Some((f, s)) if *f == face => s.push(c),
                _ => runs.push((face, c.to_string())),
            }
        }
        runs
    }

    /// Width in points of each run that [`FontSet::runs`] returns.
    pub(crate) fn run_width(&self, face: Face, text: &str, size: f32) -> f32 {
        let face = self.face(face);
        text.chars().map(|c| face.advance_em(c)).sum::<f32>() * size
    }
}

/// Whether a line may break before or after `c` without a space (CJK scripts).
pub(crate) fn is_cjk_breakable(c: char) -> bool {
    matches!(u32::from(c),
        0x2E80..=0x2FDF   // radicals
        | 0x3000..=0x30FF // CJK punctuation, kana
        | 0x3100..=0x31FF
        | 0x3400..=0x4DBF // extension A
        | 0x4E00..=0x9FFF // unified ideographs
        | 0xAC00..=0xD7AF // Hangul syllables
        | 0xF900..=0xFAFF
        | 0xFF00..=0xFFEF // full-width forms
        | 0x20000..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fonts_parse_and_cover_the_test_names() {
        let f = fonts().expect("fonts parse");
        for c in "Zoë Ångström Łukasz Żółć αβγ Дмитрий".chars() {
            assert_ne!(f.resolve(c, Weight::Regular).1, REPLACEMENT, "{c}");
            assert_ne!(f.resolve(c, Weight::Bold).1, REPLACEMENT, "{c}");
        }
        assert_eq!(f.resolve('李', Weight::Regular).0, Face::Cjk);
        assert_eq!(f.resolve('雷', Weight::Bold).0, Face::Cjk);
        assert!(f.regular.has(REPLACEMENT) && f.bold.has(REPLACEMENT));
    }

    #[test]
    fn widths_come_from_the_font_metrics() {
        let f = fonts().expect("fonts parse");
        let i = f.width("iiii", Weight::Regular, 10.0);
        let m = f.width("MMMM", Weight::Regular, 10.0);
        assert!(i > 0.0 && m > 2.0 * i, "i={i} m={m}");
        assert!(f.width("MMMM", Weight::Bold, 10.0) > m);
        // Linear in size.
        assert!((f.width("MMMM", Weight::Regular, 20.0) - 2.0 * m).abs() < 1e-3);
        let chars: BTreeSet<char> = "Zoë Ångström".chars().collect();
        let sub = f.regular.subset(&chars);
        assert!(sub.original_bytes.len() < f.regular.parsed.original_bytes.len() / 10);
        for c in &chars {
            let gid = sub.codepoint_to_glyph[&u32::from(*c)];
            let full = f.regular.parsed.codepoint_to_glyph[&u32::from(*c)];
            assert_eq!(
                sub.glyph_widths[&gid], f.regular.parsed.glyph_widths[&full],
                "{c}"
            );
        }
        let runs = f.runs("Dr 李雷 ok", Weight::Regular);
        assert_eq!(runs.len(), 3);
        assert_eq!(runs[1], (Face::Cjk, "李雷".to_string()));
    }
}
