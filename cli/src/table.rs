//! Aligned text tables for listings (`topic list`, `topic describe`, `group describe`): a header row, then one
//! row per item, columns padded to their widest cell and separated by two spaces, so `column`, `awk` and eyes
//! all read them.

use std::io::{self, Write};

pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self { rows: vec![header.iter().map(|h| (*h).to_owned()).collect()] }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.rows[0].len(), "every row has the header's columns");
        self.rows.push(cells);
    }

    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let columns = self.rows[0].len();
        let widths: Vec<usize> = (0..columns)
            .map(|c| self.rows.iter().map(|r| r.get(c).map_or(0, String::len)).max().unwrap_or(0))
            .collect();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_to_the_widest_cell() {
        let mut table = Table::new(&["NAME", "N"]);
        table.row(vec!["orders".into(), "3".into()]);
        table.row(vec!["a".into(), "12".into()]);
        let mut out = Vec::new();
        table.write(&mut out).expect("writing to a Vec cannot fail");
        assert_eq!(String::from_utf8_lossy(&out), "NAME    N\norders  3\na       12\n");
    }
}
