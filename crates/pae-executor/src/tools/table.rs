//! Parts of a file [`FileReader`](super::FileReader) can return instead of
//! all of it: one column of a table, or one setting's value. Small models
//! copy numbers out of a file's text badly; asked for a column, the tool
//! hands back exactly the values, ready for the calculator's `sum`, `avg`
//! and `count`.

use pae_core::ToolError;

/// The values of `column` (a header name, or a number from 1) of the table
/// in `text`, joined by `", "`, without the header.
///
/// Rows are the lines that are not blank and do not start with `#`. A
/// table with `,`, tab or `;` in its first row is read as CSV with that
/// delimiter (quoted fields may hold it); any other splits at runs of
/// spaces. The first row is a header when none of its fields is a number.
/// A name matches a header ignoring case, spaces, `_` and `-`; failing
/// that, the one header that contains it.
///
/// # Errors
/// [`ToolError::InvalidInput`] naming the columns there are, when `column`
/// is none of them; or when the file has no rows.
pub(super) fn column(text: &str, file: &str, column: &str) -> Result<String, ToolError> {
    let rows = rows(text)?;
    let Some(first) = rows.first() else {
        return Err(ToolError::invalid_input(format!(
            "{file:?} has no rows to take a column from"
        )));
    };
    let header = first.iter().all(|field| number(field).is_none());
    let widest = rows.iter().map(Vec::len).max().unwrap_or(0);
    let index = match column.trim().parse::<usize>() {
        Ok(n) if (1..=widest).contains(&n) => n - 1,
        Ok(_) => {
            return Err(ToolError::invalid_input(format!(
                "{file:?} has columns 1 to {widest}"
            )));
        }
        Err(_) if header => find(first, column).ok_or_else(|| {
            ToolError::invalid_input(format!(
                "{file:?} has no column {column:?}; its columns are: {}",
                first.join(", ")
            ))
        })?,
        // A name for a table without a header: the one column of numbers
        // when there is exactly one (a list of readings, `milk 2.49`).
        Err(_) => only_numbers(&rows, widest).ok_or_else(|| {
            ToolError::invalid_input(format!(
                "{file:?} has no header row; give the column's number: {}",
                samples(&rows, widest)
            ))
        })?,
    };
    let values: Vec<&str> = rows
        .iter()
        .skip(usize::from(header))
        .filter_map(|row| row.get(index).map(String::as_str))
        .collect();
    Ok(values.join(", "))
}

/// The index of the only column whose every field is a number, if exactly
/// one is.
fn only_numbers(rows: &[Vec<String>], widest: usize) -> Option<usize> {
    let mut numeric = (0..widest).filter(|&index| {
        rows.iter()
            .all(|row| row.get(index).is_some_and(|field| number(field).is_some()))
    });
    match (numeric.next(), numeric.next()) {
        (Some(index), None) => Some(index),
        _ => None,
    }
}

/// Each column's number with its first values: `1 (milk, bread, ...)`.
fn samples(rows: &[Vec<String>], widest: usize) -> String {
    (0..widest)
        .map(|index| {
            let values: Vec<&str> = rows
                .iter()
                .filter_map(|row| row.get(index).map(String::as_str))
                .take(3)
                .collect();
            let more = if rows.len() > 3 { ", ..." } else { "" };
            format!("{} ({}{more})", index + 1, values.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The value of the setting `key` in `text`: lines `name = value` or
/// `name: value`, names matched as [`column`] matches headers.
///
/// # Errors
/// [`ToolError::InvalidInput`] naming the settings there are, when `key`
/// is none of them.
pub(super) fn setting(text: &str, file: &str, key: &str) -> Result<String, ToolError> {
    let pairs: Vec<(String, &str)> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with(';'))
        .filter_map(|line| {
            let at = line.find(['=', ':'])?;
            Some((line[..at].trim().to_owned(), line[at + 1..].trim()))
        })
        .collect();
    let names: Vec<String> = pairs.iter().map(|(name, _)| name.clone()).collect();
    match find(&names, key) {
        Some(index) => Ok(pairs[index].1.to_owned()),
        None if names.is_empty() => Err(ToolError::invalid_input(format!(
            "{file:?} has no \"name = value\" or \"name: value\" lines"
        ))),
        None => Err(ToolError::invalid_input(format!(
            "{file:?} has no setting {key:?}; its settings are: {}",
            names.join(", ")
        ))),
    }
}

/// The table's rows, each a list of trimmed fields.
fn rows(text: &str) -> Result<Vec<Vec<String>>, ToolError> {
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .collect();
    let Some(first) = lines.first() else {
        return Ok(Vec::new());
    };
    let Some(delimiter) = [b',', b'\t', b';']
        .into_iter()
        .find(|d| first.as_bytes().contains(d))
    else {
        return Ok(lines
            .iter()
            .map(|line| line.split_whitespace().map(str::to_owned).collect())
            .collect());
    };
    let joined = lines.join("\n");
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(joined.as_bytes())
        .records()
        .map(|record| {
            record
                .map(|r| r.iter().map(str::to_owned).collect())
                .map_err(|e| ToolError::invalid_input(format!("the table cannot be read: {e}")))
        })
        .collect()
}

/// A field as a number: digits with an optional sign, decimal point,
/// currency sign or percent.
fn number(field: &str) -> Option<f64> {
    field
        .trim()
        .trim_start_matches(['$', '€', '£'])
        .trim_end_matches('%')
        .parse()
        .ok()
}

/// Where `wanted` is among `names`: equal ignoring case, spaces, `_` and
/// `-`; or else the only name containing it; or else the only name it
/// contains (`units sold` for a column `units`).
fn find(names: &[String], wanted: &str) -> Option<usize> {
    let plain = |text: &str| -> String {
        text.chars()
            .filter(|c| !matches!(c, ' ' | '_' | '-'))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let wanted = plain(wanted);
    if wanted.is_empty() {
        return None;
    }
    let names: Vec<String> = names.iter().map(|n| plain(n)).collect();
    if let Some(index) = names.iter().position(|n| *n == wanted) {
        return Some(index);
    }
    let only = |found: &mut dyn Iterator<Item = usize>| match (found.next(), found.next()) {
        (Some(index), None) => Some(index),
        _ => None,
    };
    only(&mut (0..names.len()).filter(|&i| names[i].contains(&wanted))).or_else(|| {
        only(&mut (0..names.len()).filter(|&i| !names[i].is_empty() && wanted.contains(&names[i])))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEAM: &str = "name,age,hours\nAna,34,38\nBen,29,42\n\nChloe,41,35\n";

    #[test]
    fn columns_by_name_or_number() {
        assert_eq!(column(TEAM, "team.csv", "age").unwrap(), "34, 29, 41");
        assert_eq!(column(TEAM, "team.csv", " Hours ").unwrap(), "38, 42, 35");
        assert_eq!(column(TEAM, "team.csv", "1").unwrap(), "Ana, Ben, Chloe");
        let error = column(TEAM, "team.csv", "salary").unwrap_err().to_string();
        assert!(error.contains("name, age, hours"), "{error}");
        assert!(column(TEAM, "team.csv", "4").is_err());
        // Quoted fields keep their delimiter; tabs and semicolons split.
        let quoted = "item,price\n\"Tea, green\",3.50\nMilk,1.20\n";
        assert_eq!(column(quoted, "q.csv", "item").unwrap(), "Tea, green, Milk");
        assert_eq!(column("a\tb\n1\t2\n3\t4\n", "t.tsv", "b").unwrap(), "2, 4");
        assert_eq!(column("a;b\n1;2\n", "s.csv", "a").unwrap(), "1");
    }

    #[test]
    fn tables_split_at_spaces_without_a_header() {
        let groceries = "milk 2.49\nbread   3.15\n# a comment\neggs 4.20\n";
        assert_eq!(column(groceries, "g.txt", "2").unwrap(), "2.49, 3.15, 4.20");
        // A name picks the one column of numbers.
        assert_eq!(
            column(groceries, "g.txt", "price").unwrap(),
            "2.49, 3.15, 4.20"
        );
        let mixed = "milk 2.49 2\nbread 3.15 1\n";
        let error = column(mixed, "m.txt", "price").unwrap_err().to_string();
        assert!(
            error.ends_with(
                "no header row; give the column's number: 1 (milk, bread), 2 (2.49, 3.15), 3 (2, 1)"
            ),
            "{error}"
        );
        assert_eq!(column(mixed, "m.txt", "3").unwrap(), "2, 1");
        assert_eq!(column("12.4\n15.1\n", "r.txt", "1").unwrap(), "12.4, 15.1");
        assert_eq!(
            column("12.4\n15.1\n", "r.txt", "value").unwrap(),
            "12.4, 15.1"
        );
        assert!(column("\n\n", "empty.txt", "1").is_err());
    }

    #[test]
    fn settings_by_name() {
        let conf = "# service\nname = sync\nbatch_size = 250\ntimeout_seconds = 45\n";
        assert_eq!(setting(conf, "app.conf", "batch size").unwrap(), "250");
        assert_eq!(setting(conf, "app.conf", "timeout").unwrap(), "45");
        assert_eq!(
            setting("income: 4200\nrent: 1350\n", "b.txt", "Rent").unwrap(),
            "1350"
        );
        let error = setting(conf, "app.conf", "port").unwrap_err().to_string();
        assert!(
            error.contains("name, batch_size, timeout_seconds"),
            "{error}"
        );
        assert!(setting("just text\n", "x.txt", "a").is_err());
    }

    #[test]
    fn a_name_in_several_headers_is_not_guessed() {
        let table = "units_jan,units_feb\n1,2\n";
        assert!(column(table, "u.csv", "units").is_err());
        assert_eq!(column(table, "u.csv", "units feb").unwrap(), "2");
        // A longer name that holds exactly one header.
        assert_eq!(column(TEAM, "team.csv", "age_years").unwrap(), "34, 29, 41");
        assert!(column("ab,a\n1,2\n", "x.csv", "abc").is_err());
    }
}
