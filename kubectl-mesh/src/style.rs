//! Colours and status symbols: the one place the binary paints text.
//!
//! Every command that marks an outcome uses the same symbols — `✓` passed or done (green),
//! `✗` failed (red), `!` a warning (yellow), `…` still running — and the same rule for
//! colour: only on a terminal, never when `NO_COLOR` is set (<https://no-color.org>).

use std::io::IsTerminal;

/// Whether stderr may be coloured: it is a terminal and `NO_COLOR` is unset or empty.
///
/// Progress and diagnostics go to stderr; [`Style::stdout`] adds the same test for stdout.
pub fn color_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Paints symbols and text with ANSI colours, or leaves them plain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    color: bool,
}

/// The ANSI colours the binary uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Color {
    Green,
    Red,
    Yellow,
    Dim,
}

impl Color {
    fn sgr(self) -> &'static str {
        match self {
            Color::Green => "32",
            Color::Red => "31",
            Color::Yellow => "33",
            Color::Dim => "2",
        }
    }
}

impl Style {
    /// For text written to stderr (progress lines): coloured when [`color_enabled`].
    pub fn stderr() -> Style {
        Style {
            color: color_enabled(),
        }
    }

    /// For text written to stdout (reports): coloured when [`color_enabled`] and stdout is
    /// a terminal too, so that `| less` or `> file` gets no escape codes.
    pub fn stdout() -> Style {
        Style {
            color: color_enabled() && std::io::stdout().is_terminal(),
        }
    }

    /// Never coloured.
    #[cfg(test)]
    pub fn plain() -> Style {
        Style { color: false }
    }

    fn paint(self, color: Color, text: &str) -> String {
        if self.color {
            format!("\x1b[{}m{text}\x1b[0m", color.sgr())
        } else {
            text.to_owned()
        }
    }

    /// `✓`: passed, done, already in place.
    pub fn ok(self) -> String {
        self.paint(Color::Green, "✓")
    }

    /// `✗`: failed.
    pub fn failed(self) -> String {
        self.paint(Color::Red, "✗")
    }

    /// `!`: a warning; it does not fail the command.
    pub fn warning(self) -> String {
        self.paint(Color::Yellow, "!")
    }

    /// `…`: started or waiting; never coloured.
    pub fn pending(self) -> String {
        "…".to_owned()
    }

    /// `text` in a faint colour: detail that matters less (a fingerprint, a skipped check).
    pub fn dim(self, text: &str) -> String {
        self.paint(Color::Dim, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_symbols_have_no_escape_codes() {
        let plain = Style::plain();
        assert_eq!(
            [plain.ok(), plain.failed(), plain.warning(), plain.pending()],
            ["✓", "✗", "!", "…"]
        );
        assert_eq!(plain.dim("x"), "x");
    }

    #[test]
    fn colour_wraps_the_symbol_and_resets() {
        let color = Style { color: true };
        assert_eq!(color.ok(), "\x1b[32m✓\x1b[0m");
        assert_eq!(color.failed(), "\x1b[31m✗\x1b[0m");
        assert_eq!(color.warning(), "\x1b[33m!\x1b[0m");
        assert_eq!(color.dim("x"), "\x1b[2mx\x1b[0m");
        assert_eq!(color.pending(), "…");
    }
}
