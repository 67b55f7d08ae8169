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
    let table = Table::read(text, file, "a column")?;
    let index = table.column(column)?;
    let values: Vec<&str> = table
        .body()
        .iter()
        .filter_map(|row| row.get(index).map(String::as_str))
        .collect();
    Ok(values.join(", "))
}

/// The row of the table in `text` whose first field is `key` (matched as
/// [`column`] matches headers; failing that, the one row with a field
/// equal to `key` ignoring case, spaces, `_` and `-`), as `header: value`
/// pairs joined by `", "` (the fields alone when the table has no header);
/// with `column`, only that row's value in the column. When several rows
/// start with `key`, all of them, one per line (with `column`, their
/// values joined by `", "`, as [`column`] gives a column).
///
/// # Errors
/// [`ToolError::NotOneOf`] naming the rows' first fields when no row is
/// `key`, or the columns when `column` is none of them.
pub(super) fn row(
    text: &str,
    file: &str,
    key: &str,
    column: Option<&str>,
) -> Result<String, ToolError> {
    let table = Table::read(text, file, "a row")?;
    let index = column.map(|c| table.column(c)).transpose()?;
    let body = table.body();
    let firsts: Vec<String> = body
        .iter()
        .map(|row| row.first().cloned().unwrap_or_default())
        .collect();
    let wanted = plain(key);
    // The rows whose first field is the key: `find`'s first test, done
    // once here since several rows may pass it.
    let starting: Vec<usize> = (0..firsts.len())
        .filter(|&i| !wanted.is_empty() && plain(&firsts[i]) == wanted)
        .collect();
    if starting.len() > 1 {
        let shown = starting
            .iter()
            .map(|&i| show_row(&table, &body[i], file, key, index))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(shown.join(if index.is_some() { ", " } else { "\n" }));
    }
    let found = starting
        .first()
        .copied()
        .or_else(|| find(&firsts, key))
        .or_else(|| {
            let holds_key = |row: &Vec<String>| row.iter().any(|field| plain(field) == wanted);
            only((0..body.len()).filter(|&i| !wanted.is_empty() && holds_key(&body[i])))
        });
    let Some(found) = found else {
        return Err(none_of(
            "key",
            &firsts,
            format!(
                "{file:?} has no row {key:?}; its rows start with: {}",
                firsts.join(", ")
            ),
        ));
    };
    show_row(&table, &body[found], file, key, index)
}

/// One row of [`row`]'s answer: its value in column `index`, or all of it
/// as `header: value` pairs.
fn show_row(
    table: &Table<'_>,
    fields: &[String],
    file: &str,
    key: &str,
    index: Option<usize>,
) -> Result<String, ToolError> {
    if let Some(index) = index {
        return fields.get(index).cloned().ok_or_else(|| {
            ToolError::invalid_input(format!(
                "{file:?}: the row {key:?} has no field in column {}",
                index + 1
            ))
        });
    }
    Ok(match table.header() {
        Some(names) => fields
            .iter()
            .enumerate()
            .map(|(i, value)| match names.get(i) {
                Some(name) => format!("{name}: {value}"),
                None => value.clone(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        None => fields.join(", "),
    })
}

/// Whether `text` reads as a table rather than settings: its first row
/// splits at `,`, tab or `;` and holds no `=` or `:`.
pub(super) fn is_table(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .is_some_and(|first| first.contains([',', '\t', ';']) && !first.contains(['=', ':']))
}

/// A table's rows, and whether the first is a header.
struct Table<'a> {
    file: &'a str,
    rows: Vec<Vec<String>>,
    has_header: bool,
}

impl<'a> Table<'a> {
    /// The table in `text`; `what` names what was asked for, for the
    /// error on a file without rows.
    fn read(text: &str, file: &'a str, what: &str) -> Result<Self, ToolError> {
        let rows = rows(text)?;
        let Some(first) = rows.first() else {
            return Err(ToolError::invalid_input(format!(
                "{file:?} has no rows to take {what} from"
            )));
        };
        let has_header = first.iter().all(|field| number(field).is_none());
        Ok(Self {
            file,
            rows,
            has_header,
        })
    }

    fn header(&self) -> Option<&[String]> {
        self.has_header.then(|| self.rows[0].as_slice())
    }

    fn body(&self) -> &[Vec<String>] {
        &self.rows[usize::from(self.has_header)..]
    }

    /// The index of `column`: a header name, or a number from 1.
    fn column(&self, column: &str) -> Result<usize, ToolError> {
        let file = self.file;
        let widest = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        match (column.trim().parse::<usize>(), self.header()) {
            (Ok(n), _) if (1..=widest).contains(&n) => Ok(n - 1),
            (Ok(_), _) => Err(ToolError::invalid_input(format!(
                "{file:?} has columns 1 to {widest}"
            ))),
            (Err(_), Some(names)) => find(names, column).ok_or_else(|| {
                none_of(
                    "column",
                    names,
                    format!(
                        "{file:?} has no column {column:?}; its columns are: {}",
                        names.join(", ")
                    ),
                )
            }),
            // A name for a table without a header: the one column of
            // numbers when there is exactly one (a list of readings,
            // `milk 2.49`).
            (Err(_), None) => only_numbers(&self.rows, widest).ok_or_else(|| {
                ToolError::invalid_input(format!(
                    "{file:?} has no header row; give the column's number: {}",
                    samples(&self.rows, widest)
                ))
            }),
        }
    }
}

/// The index of the only column whose every field is a number, if exactly
/// one is.
fn only_numbers(rows: &[Vec<String>], widest: usize) -> Option<usize> {
    only((0..widest).filter(|&index| {
        rows.iter()
            .all(|row| row.get(index).is_some_and(|field| number(field).is_some()))
    }))
}

/// The one index `found` yields, if it yields exactly one.
fn only(mut found: impl Iterator<Item = usize>) -> Option<usize> {
    match (found.next(), found.next()) {
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
        None => Err(none_of(
            "key",
            &names,
            format!(
                "{file:?} has no setting {key:?}; its settings are: {}",
                names.join(", ")
            ),
        )),
    }
}

/// The most values an error lists as the ones an argument may take.
const MAX_ALLOWED: usize = 100;

/// An argument that is none of `names`: [`ToolError::NotOneOf`] with the
/// distinct names, or a plain invalid input when there are too many to
/// hold a model to.
fn none_of(argument: &str, names: &[String], message: String) -> ToolError {
    let mut allowed: Vec<String> = Vec::new();
    for name in names {
        if !name.is_empty() && !allowed.contains(name) {
            allowed.push(name.clone());
        }
    }
    if allowed.is_empty() || allowed.len() > MAX_ALLOWED {
        return ToolError::invalid_input(message);
    }
    ToolError::not_one_of(argument, allowed, message)
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

/// `text` lowercased, without spaces, `_` and `-`.
fn plain(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Where `wanted` is among `names`: equal ignoring case, spaces, `_` and
/// `-`; or else the only name containing it; or else the only name it
/// contains (`units sold` for a column `units`).
fn find(names: &[String], wanted: &str) -> Option<usize> {
    let wanted = plain(wanted);
    if wanted.is_empty() {
        return None;
    }
    let names: Vec<String> = names.iter().map(|n| plain(n)).collect();
    if let Some(index) = names.iter().position(|n| *n == wanted) {
        return Some(index);
    }
    only((0..names.len()).filter(|&i| names[i].contains(&wanted))).or_else(|| {
        only((0..names.len()).filter(|&i| !names[i].is_empty() && wanted.contains(&names[i])))
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
        let error = column(TEAM, "team.csv", "salary").unwrap_err();
        assert_eq!(
            error.allowed(),
            Some((
                "column",
                &["name".to_owned(), "age".into(), "hours".into()][..]
            ))
        );
        let error = error.to_string();
        assert!(error.starts_with("invalid input: "), "{error}");
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
    fn rows_and_values_by_key() {
        let sales = "month,units,price\nJanuary,120,15.50\nMarch,140,14.00\n";
        assert_eq!(
            row(sales, "sales.csv", "march", None).unwrap(),
            "month: March, units: 140, price: 14.00"
        );
        assert_eq!(
            row(sales, "sales.csv", "March", Some("units")).unwrap(),
            "140"
        );
        assert_eq!(row(sales, "sales.csv", "Jan", Some("3")).unwrap(), "15.50");
        let error = row(sales, "sales.csv", "May", Some("units")).unwrap_err();
        assert_eq!(
            error.allowed(),
            Some(("key", &["January".to_owned(), "March".into()][..]))
        );
        assert!(error.to_string().contains("January, March"), "{error}");
        let error = row(sales, "sales.csv", "March", Some("revenue"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("month, units, price"), "{error}");
        // A key that is not in the first column: the one row holding it.
        assert_eq!(row(TEAM, "team.csv", "42", Some("name")).unwrap(), "Ben");
        // Several rows with the key: all of them.
        assert_eq!(
            row("a,b\n1,2\n1,3\n", "x.csv", "1", Some("b")).unwrap(),
            "2, 3"
        );
        assert_eq!(
            row("a,b\n1,2\n2,5\n1,3\n", "x.csv", "1", None).unwrap(),
            "a: 1, b: 2\na: 1, b: 3"
        );
        // Without a header, the fields alone.
        assert_eq!(
            row("milk 2.49\nbread 3.15\n", "g.txt", "bread", None).unwrap(),
            "bread, 3.15"
        );
    }

    #[test]
    fn tables_and_settings_are_told_apart() {
        assert!(is_table("# sales\nmonth,units\nMay,3\n"));
        assert!(is_table("a\tb\n1\t2\n"));
        assert!(!is_table("income: 4200\nrent: 1350\n"));
        assert!(!is_table("tags = a, b\n"));
        assert!(!is_table("milk 2.49\n"));
        assert!(!is_table(""));
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
