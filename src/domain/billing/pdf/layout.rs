//! The pages of an invoice: positioned texts and rules, in points from the bottom left of an
//! A4 page. Every page repeats the header (the space, the member, the number or the DRAFT
//! mark, the dates, "Page i of n"); the lines flow from page to page, each page with the
//! table's column titles; credit notes and payments follow; the totals come last, kept
//! together, so they close the last page.

use super::fonts::{Fonts, Style};
use super::{InvoiceSheet, SheetStatus};
use crate::domain::billing::documents::{tax_totals, DocumentLine};
use crate::domain::currency::{format_minor, format_money};

pub const PAGE_WIDTH: f32 = 595.0;
pub const PAGE_HEIGHT: f32 = 842.0;
const LEFT: f32 = 40.0;
const RIGHT: f32 = PAGE_WIDTH - 40.0;
const TOP: f32 = PAGE_HEIGHT - 40.0;
/// Nothing of the body goes below this (the bottom margin).
const BOTTOM: f32 = 50.0;
const BODY_SIZE: f32 = 9.0;
const LEADING: f32 = 11.0;
/// A description wraps onto at most this many lines, then is cut with an ellipsis.
pub const MAX_DESCRIPTION_LINES: usize = 4;

/// The table's columns: description and date from the left, amounts to the right edge.
const DESCRIPTION_X: f32 = LEFT;
const DESCRIPTION_WIDTH: f32 = 200.0;
const DATE_X: f32 = 246.0;
const NET_RIGHT: f32 = 368.0;
const RATE_X: f32 = 376.0;
const RATE_WIDTH: f32 = 52.0;
const TAX_RIGHT: f32 = 478.0;
const TOTAL_RIGHT: f32 = RIGHT;
/// Where the totals' labels start.
const SUMMARY_X: f32 = 300.0;

/// How a text is coloured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ink {
    Black,
    Grey,
    /// The DRAFT and VOID marks.
    Red,
}

/// A text at a position (its baseline's left end).
#[derive(Debug, Clone, PartialEq)]
pub struct Text {
    pub style: Style,
    pub size: f32,
    pub x: f32,
    pub y: f32,
    pub ink: Ink,
    pub text: String,
}

/// What a page holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Text(Text),
    /// A horizontal rule from `x1` to `x2` at `y`.
    Rule {
        x1: f32,
        x2: f32,
        y: f32,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
}

impl Page {
    /// The page's texts in the order they were placed (tests read pages through this).
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.items.iter().filter_map(|i| match i {
            Item::Text(t) => Some(t.text.as_str()),
            Item::Rule { .. } => None,
        })
    }
}

/// The document's title (its metadata): `Invoice INV-2026-00001`, or a draft's id.
pub fn title(sheet: &InvoiceSheet) -> String {
    match &sheet.number {
        Some(number) => format!("Invoice {number}"),
        None => format!("Draft invoice {}", sheet.invoice_id),
    }
}

/// Places texts, measuring with the embedded faces.
struct Pen<'f> {
    fonts: &'f Fonts,
    items: Vec<Item>,
}

impl<'f> Pen<'f> {
    fn text(&mut self, style: Style, size: f32, x: f32, y: f32, text: &str) {
        self.inked(style, size, x, y, Ink::Black, text);
    }

    fn inked(&mut self, style: Style, size: f32, x: f32, y: f32, ink: Ink, text: &str) {
        let text = self.fonts.printable(text);
        if !text.trim().is_empty() {
            self.items.push(Item::Text(Text { style, size, x, y, ink, text }));
        }
    }

    /// A text whose right end is at `right`.
    fn right(&mut self, style: Style, size: f32, right: f32, y: f32, text: &str) {
        let text = self.fonts.printable(text);
        let x = right - self.fonts.get(style).width(&text, size);
        self.text(style, size, x, y, &text);
    }

    fn rule(&mut self, y: f32) {
        self.items.push(Item::Rule { x1: LEFT, x2: RIGHT, y });
    }

    /// The text in lines no wider than `width` (words kept whole where they fit), at most
    /// `max_lines`; the last kept line ends with an ellipsis when some was left out.
    fn wrap(&self, style: Style, size: f32, width: f32, text: &str, max_lines: usize) -> Vec<String> {
        let font = self.fonts.get(style);
        let fits = |s: &str| font.width(s, size) <= width;
        let mut lines: Vec<String> = Vec::new();
        let mut current = String::new();
        for word in self.fonts.printable(text).split_whitespace() {
            let candidate = if current.is_empty() { word.to_string() } else { format!("{current} {word}") };
            if fits(&candidate) {
                current = candidate;
                continue;
            }
            if !current.is_empty() {
                lines.push(std::mem::take(&mut current));
            }
            // A word wider than the column is broken where it reaches the edge.
            for c in word.chars() {
                current.push(c);
                if !fits(&current) {
                    current.pop();
                    lines.push(std::mem::replace(&mut current, c.to_string()));
                }
            }
        }
        if !current.is_empty() {
            lines.push(current);
        }
        if lines.len() > max_lines {
            lines.truncate(max_lines);
            let last = lines.last_mut().expect("max_lines is at least one");
            while !last.is_empty() && !fits(&format!("{last}…")) {
                last.pop();
            }
            last.push('…');
        }
        lines
    }
}

/// The header every page repeats; returns the height below which the body starts.
fn header(pen: &mut Pen, sheet: &InvoiceSheet, page: usize, pages: usize) -> f32 {
    let mut y = TOP;
    let headline = match sheet.status {
        SheetStatus::Finalized => "INVOICE",
        SheetStatus::Draft => "DRAFT",
        SheetStatus::Void => "VOID",
    };
    let ink = if sheet.status == SheetStatus::Finalized { Ink::Black } else { Ink::Red };
    let headline_x = RIGHT - pen.fonts.get(Style::Bold).width(headline, 16.0);
    pen.inked(Style::Bold, 16.0, headline_x, y, ink, headline);
    let issuer = pen.wrap(Style::Bold, 14.0, 330.0, &sheet.issuer, 1);
    pen.text(Style::Bold, 14.0, LEFT, y, issuer.first().map_or("", String::as_str));
    for detail in &sheet.issuer_details {
        y -= 12.0;
        let detail = pen.wrap(Style::Regular, BODY_SIZE, 330.0, detail, 1);
        pen.text(Style::Regular, BODY_SIZE, LEFT, y, detail.first().map_or("", String::as_str));
    }

    // The member on the left, the invoice's facts on the right.
    y -= 24.0;
    let facts_top = y;
    pen.inked(Style::Regular, 8.0, LEFT, y, Ink::Grey, "Billed to");
    y -= 13.0;
    let member = pen.wrap(Style::Bold, 11.0, 280.0, &sheet.member_name, 1);
    pen.text(Style::Bold, 11.0, LEFT, y, member.first().map_or("", String::as_str));
    if let Some(email) = &sheet.member_email {
        y -= 12.0;
        let email = pen.wrap(Style::Regular, BODY_SIZE, 280.0, email, 1);
        pen.text(Style::Regular, BODY_SIZE, LEFT, y, email.first().map_or("", String::as_str));
    }
    let date = sheet.dated.format("%Y-%m-%d").to_string();
    let facts = [
        match &sheet.number {
            Some(number) => format!("Invoice number: {number}"),
            None => "Invoice number: none yet (a draft)".to_string(),
        },
        match sheet.status {
            SheetStatus::Draft => format!("Drafted: {date}"),
            _ => format!("Finalized: {date}"),
        },
        format!("Period: {} to {}", sheet.period_from, sheet.period_to),
        format!("Currency: {}", sheet.currency),
        format!("Page {page} of {pages}"),
    ];
    let mut facts_y = facts_top;
    for fact in &facts {
        pen.text(Style::Regular, BODY_SIZE, 360.0, facts_y, fact);
        facts_y -= 12.0;
    }
    y = y.min(facts_y + 12.0);

    let mark = match (&sheet.status, &sheet.voided) {
        (SheetStatus::Draft, _) => {
            Some("DRAFT: not an invoice until it is finalized; it has no number yet.".to_string())
        }
        (SheetStatus::Void, Some((at, reason))) => Some(format!("VOID since {}: {reason}", at.format("%Y-%m-%d"))),
        (SheetStatus::Void, None) => Some("VOID".to_string()),
        (SheetStatus::Finalized, _) => None,
    };
    if let Some(mark) = mark {
        for line in pen.wrap(Style::Bold, 10.0, RIGHT - LEFT, &mark, 2) {
            y -= 14.0;
            pen.inked(Style::Bold, 10.0, LEFT, y, Ink::Red, &line);
        }
    }
    y -= 10.0;
    pen.rule(y);
    y - 6.0
}

/// The lines table's column titles.
fn column_titles(pen: &mut Pen, y: f32) -> f32 {
    let y = y - LEADING;
    pen.text(Style::Bold, BODY_SIZE, DESCRIPTION_X, y, "Description");
    pen.text(Style::Bold, BODY_SIZE, DATE_X, y, "Date");
    pen.right(Style::Bold, BODY_SIZE, NET_RIGHT, y, "Net");
    pen.text(Style::Bold, BODY_SIZE, RATE_X, y, "Tax rate");
    pen.right(Style::Bold, BODY_SIZE, TAX_RIGHT, y, "Tax");
    pen.right(Style::Bold, BODY_SIZE, TOTAL_RIGHT, y, "Total");
    pen.rule(y - 4.0);
    y - 6.0
}

/// Draws a block from the top `y` it is given.
type Draw<'a> = Box<dyn Fn(&mut Pen, f32) + 'a>;

/// A block of the body: how tall it is, whether it belongs to the lines table, and what it
/// draws.
struct Block<'a> {
    height: f32,
    in_table: bool,
    draw: Draw<'a>,
}

fn tax_label(rate: Option<&str>, percent: Option<&str>) -> String {
    match (rate, percent) {
        (Some(rate), Some(percent)) => format!("{rate} {percent}%"),
        (Some(rate), None) => rate.to_string(),
        (None, _) => "none".to_string(),
    }
}

fn line_block<'a>(pen: &Pen, line: &'a DocumentLine, currency: &'a str) -> Block<'a> {
    let description = pen.wrap(Style::Regular, BODY_SIZE, DESCRIPTION_WIDTH, &line.description, MAX_DESCRIPTION_LINES);
    let label = tax_label(line.tax_rate_id.as_deref(), line.tax_percent.as_deref());
    let rate = pen.wrap(Style::Regular, BODY_SIZE, RATE_WIDTH, &label, 1);
    Block {
        height: LEADING * description.len().max(1) as f32 + 3.0,
        in_table: true,
        draw: Box::new(move |pen, top| {
            let y = top - LEADING;
            for (i, text) in description.iter().enumerate() {
                pen.text(Style::Regular, BODY_SIZE, DESCRIPTION_X, y - LEADING * i as f32, text);
            }
            // Only the date of the use: `usage_at` is RFC 3339.
            let date = line.usage_at.as_deref().map_or("", |at| at.get(..10).unwrap_or(at));
            pen.text(Style::Regular, BODY_SIZE, DATE_X, y, date);
            pen.right(Style::Regular, BODY_SIZE, NET_RIGHT, y, &format_minor(line.net_minor, currency));
            pen.text(Style::Regular, BODY_SIZE, RATE_X, y, rate.first().map_or("", String::as_str));
            pen.right(Style::Regular, BODY_SIZE, TAX_RIGHT, y, &format_minor(line.tax_minor, currency));
            pen.right(Style::Regular, BODY_SIZE, TOTAL_RIGHT, y, &format_minor(line.total_minor, currency));
        }),
    }
}

/// A section's title (credit notes, payments), with room for its first row so that a title
/// never ends a page alone.
fn section_title(title: &'static str) -> Block<'static> {
    Block {
        height: 2.0 * LEADING + 8.0,
        in_table: false,
        draw: Box::new(move |pen, top| pen.text(Style::Bold, 10.0, LEFT, top - LEADING - 6.0, title)),
    }
}

/// A row of a section: a date or number, what it is, a note, an amount at the right edge.
fn section_row(first: String, second: String, note: String, amount: String) -> Block<'static> {
    Block {
        height: LEADING,
        in_table: false,
        draw: Box::new(move |pen, top| {
            let y = top - LEADING;
            pen.text(Style::Regular, BODY_SIZE, LEFT, y, &first);
            pen.text(Style::Regular, BODY_SIZE, 140.0, y, &second);
            let note = pen.wrap(Style::Regular, BODY_SIZE, 240.0, &note, 1);
            pen.text(Style::Regular, BODY_SIZE, 240.0, y, note.first().map_or("", String::as_str));
            pen.right(Style::Regular, BODY_SIZE, RIGHT, y, &amount);
        }),
    }
}

/// Tax per rate, the totals, what credit notes took off, what was paid, what is still due,
/// and the payment status: one block, so the totals are whole on the last page.
fn totals_block(sheet: &InvoiceSheet) -> Block<'_> {
    let money = |amount: i64| format_money(amount, &sheet.currency);
    let mut rows: Vec<(Style, String, String)> = vec![(Style::Regular, "Net".into(), money(sheet.net_minor))];
    for tax in tax_totals(&sheet.lines) {
        let label = match &tax.tax_rate_id {
            Some(_) => format!(
                "Tax {} on {}",
                tax_label(tax.tax_rate_id.as_deref(), tax.tax_percent.as_deref()),
                format_minor(tax.net_minor, &sheet.currency)
            ),
            None => format!("No tax on {}", format_minor(tax.net_minor, &sheet.currency)),
        };
        rows.push((Style::Regular, label, money(tax.tax_minor)));
    }
    rows.push((Style::Regular, "Tax".into(), money(sheet.tax_minor)));
    rows.push((Style::Bold, "Total".into(), money(sheet.total_minor)));
    if sheet.credited_minor != 0 {
        rows.push((Style::Regular, "Credit notes".into(), money(sheet.credited_minor)));
    }
    rows.push((Style::Regular, "Paid".into(), money(sheet.paid_minor)));
    rows.push((Style::Bold, "Balance due".into(), money(sheet.balance_due_minor)));
    rows.push((Style::Regular, "Payment status".into(), sheet.payment_status.replace('_', " ")));
    Block {
        height: LEADING * (rows.len() as f32 + 1.0) + 10.0,
        in_table: false,
        draw: Box::new(move |pen, top| {
            let mut y = top - 6.0;
            pen.items.push(Item::Rule { x1: SUMMARY_X, x2: RIGHT, y });
            for (style, label, value) in &rows {
                y -= LEADING + 1.0;
                pen.text(*style, BODY_SIZE, SUMMARY_X, y, label);
                pen.right(*style, BODY_SIZE, RIGHT, y, value);
            }
        }),
    }
}

/// The body's blocks in order.
fn body<'a>(pen: &Pen, sheet: &'a InvoiceSheet) -> Vec<Block<'a>> {
    let mut blocks: Vec<Block> = sheet.lines.iter().map(|l| line_block(pen, l, &sheet.currency)).collect();
    if sheet.lines.is_empty() {
        blocks.push(section_row("No lines.".into(), String::new(), String::new(), String::new()));
    }
    let day = |at: &chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d").to_string();
    let money = |amount: i64| format_money(amount, &sheet.currency);
    if !sheet.credit_notes.is_empty() {
        blocks.push(section_title("Credit notes"));
        for note in &sheet.credit_notes {
            blocks.push(section_row(note.number.clone(), day(&note.at), note.reason.clone(), money(note.total_minor)));
        }
    }
    if !sheet.payments.is_empty() {
        blocks.push(section_title("Payments and refunds"));
        for p in &sheet.payments {
            let what = format!("{} ({})", p.kind, p.method.replace('_', " "));
            let reference = p.reference.clone().unwrap_or_default();
            blocks.push(section_row(day(&p.at), what, reference, money(p.amount_minor)));
        }
    }
    blocks.push(totals_block(sheet));
    blocks
}

/// The invoice's pages.
pub fn lay_out(sheet: &InvoiceSheet, fonts: &Fonts) -> Vec<Page> {
    // The header's height is the same on every page: measure it once.
    let mut pen = Pen { fonts, items: Vec::new() };
    let body_top = header(&mut pen, sheet, 1, 1);
    let blocks = body(&pen, sheet);

    let mut bodies: Vec<Vec<Item>> = Vec::new();
    let mut y = body_top;
    let mut titled = false;
    pen.items.clear();
    for block in &blocks {
        let needs_titles = block.in_table && !titled;
        let titles = if needs_titles { LEADING + 6.0 } else { 0.0 };
        let started = !pen.items.is_empty();
        if started && y - titles - block.height < BOTTOM {
            bodies.push(std::mem::take(&mut pen.items));
            y = body_top;
            titled = false;
        }
        if block.in_table && !titled {
            y = column_titles(&mut pen, y);
            titled = true;
        }
        (block.draw)(&mut pen, y);
        y -= block.height;
    }
    bodies.push(pen.items);

    let pages = bodies.len();
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, items)| {
            let mut pen = Pen { fonts, items: Vec::new() };
            header(&mut pen, sheet, i + 1, pages);
            pen.items.extend(items);
            Page { items: pen.items }
        })
        .collect()
}
