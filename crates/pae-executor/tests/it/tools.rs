//! The built-in tools through the `Tool` trait: the calculator's errors on
//! bad input and the file reader's refusals.

use pae_core::{Tool, ToolError};
use pae_executor::schema::validate;
use pae_executor::tools::{Calculator, CurrentTime, FileReader};
use serde_json::{Value, json};
use tempfile::TempDir;

async fn calc(expression: &str) -> Result<String, ToolError> {
    Calculator::new()
        .call(json!({ "expression": expression }))
        .await
}

#[tokio::test]
async fn calculator_answers() {
    for (expression, expected) in [
        ("2 + 2", "4"),
        ("(3 + 4) * 2.5", "17.5"),
        ("-3^2 + 10 % 4", "-7"),
        ("sqrt(2) * sqrt(2)", "2"),
        ("0.1 + 0.2", "0.3"),
        ("1e3 / 8", "125"),
        ("max(3, -1, 7.5) - min(2)", "5.5"),
        ("round(3.14159, 3)", "3.142"),
        ("2^64", "1.84467440737e19"),
    ] {
        assert_eq!(
            calc(expression).await.as_deref(),
            Ok(expected),
            "{expression}"
        );
    }
    let tool = Calculator::new();
    assert!(tool.is_read_only() && tool.is_idempotent());
    // A bare string works too (what a text action's coercion produces).
    assert_eq!(tool.call(json!("6*7")).await.as_deref(), Ok("42"));
}

#[tokio::test]
async fn calculator_reads_what_models_write() {
    for (expression, expected) in [
        ("12 * 7", "84"),
        ("12×7", "84"),
        ("12 x 7", "84"),
        ("12 X 7", "84"),
        ("12x7", "84"),
        ("(3)x(4)", "12"),
        ("12·7", "84"),
        ("12 ⋅ 7", "84"),
        ("12∗7", "84"),
        ("2^10", "1024"),
        ("2**10", "1024"),
        ("2²", "4"),
        ("3³ + 1", "28"),
        ("sqrt(16)", "4"),
        ("√16 + 9", "13"),
        ("√(16 + 9)", "5"),
        ("10% of 50", "5"),
        ("15% of 1,200", "180"),
        ("50 * 10%", "5"),
        ("10%", "0.1"),
        ("200 * 10% + 5", "25"),
        ("100 * (1 + 10%)", "110"),
        ("7 % 4", "3"),
        ("10 % -3", "1"),
        ("1,000 + 5", "1005"),
        ("1,234,567 * 2", "2469134"),
        ("1,234.5 * 2", "2469"),
        ("(1,000)", "1000"),
        // Inside a call a comma separates arguments.
        ("max(1,000, 5)", "5"),
        ("$1,200 / 4", "300"),
        ("€12 * 3", "36"),
        ("−5 + 3", "-2"),
        ("5 – 3", "2"),
        ("= 5+5", "10"),
        ("5+5 =", "10"),
        ("5+5=", "10"),
        ("5 + 5 = ?", "10"),
        ("`12*7`", "84"),
        ("\"12*7\"", "84"),
        ("'12*7'", "84"),
        ("5!", "120"),
        ("2^3!", "64"),
        ("factorial(5)", "120"),
        ("7 // 2", "3"),
        ("-7 // 2", "-4"),
        ("sin(0) + cos(pi)", "-1"),
        ("log10(1000) + log2(8)", "6"),
        ("trunc(-2.5)", "-2"),
        ("cbrt(27)", "3"),
        ("sum(1, 2, 3) / avg(1, 2, 3)", "3"),
    ] {
        assert_eq!(
            calc(expression).await.as_deref(),
            Ok(expected),
            "{expression}"
        );
    }
}

#[tokio::test]
async fn calculator_rejects_bad_input() {
    let invalid = [
        ("", "the expression is empty"),
        ("   ", "the expression is empty"),
        ("2 +", "the expression ends too early (at position 4)"),
        ("(1 + 2", "the '(' at position 1 is never closed"),
        ("1 + 2)", "unexpected ')' at position 6"),
        ("2 3", "unexpected number 3 at position 3"),
        ("1.2.3", "\"1.2.3\" at position 1 is not a number"),
        (
            "import os",
            "unknown name \"import\" at position 1 (known constants: pi, e)",
        ),
        (
            "__import__('os').system('ls')",
            "unexpected character '\\'' at position 12 (only numbers, + - * / % ^, parentheses and functions are allowed)",
        ),
        (
            "2 & 3",
            "unexpected character '&' at position 3 (only numbers, + - * / % ^, parentheses and functions are allowed)",
        ),
        (
            "foo(1)",
            "unknown function \"foo\" (known: sqrt, cbrt, abs, round, floor, ceil, trunc, ln, log, log10, log2, exp, sin, cos, tan, asin, acos, atan, min, max, sum, avg, count, pow, factorial)",
        ),
        ("sqrt(1, 2)", "sqrt takes one argument, got 2 argument(s)"),
        (
            "min()",
            "min takes at least one argument, got 0 argument(s)",
        ),
        (
            "sqrt(4",
            "the call to sqrt at position 1 is missing its ')'",
        ),
        (
            "round(2.5, 0.5)",
            "round's second argument must be a whole number from -15 to 15",
        ),
        // What models write that has no safe reading.
        (
            "2+2=4",
            "unexpected '=' at position 4: write only the expression to evaluate",
        ),
        (
            "100 + 10%",
            "\"+ 10%\" at position 5 is ambiguous: write 100 * (1 + 10/100) to add 10 percent of 100, or 100 + 10/100 to add the number 0.1",
        ),
        (
            "80 - 25%",
            "\"- 25%\" at position 4 is ambiguous: write 80 * (1 - 25/100) to subtract 25 percent of 80, or 80 - 25/100 to subtract the number 0.25",
        ),
        ("3,5 + 1", "unexpected ',' at position 2"),
        ("1,0000", "unexpected ',' at position 2"),
        ("0x10", "unexpected name \"x10\" at position 2"),
        ("(12)(7)", "unexpected '(' at position 5"),
        (
            "what is 2+2",
            "unknown name \"what\" at position 1 (known constants: pi, e)",
        ),
        ("1 x", "unexpected name \"x\" at position 3"),
        (
            "print(1)",
            "unknown function \"print\" (known: sqrt, cbrt, abs, round, floor, ceil, trunc, ln, log, log10, log2, exp, sin, cos, tan, asin, acos, atan, min, max, sum, avg, count, pow, factorial)",
        ),
        (
            "12 * 7;",
            "unexpected character ';' at position 7 (only numbers, + - * / % ^, parentheses and functions are allowed)",
        ),
        ("=", "the expression is empty"),
        ("``", "the expression is empty"),
    ];
    for (expression, message) in invalid {
        assert_eq!(
            calc(expression).await,
            Err(ToolError::invalid_input(message)),
            "{expression}"
        );
    }
    let long = "1+".repeat(1500) + "1";
    assert_eq!(
        calc(&long).await,
        Err(ToolError::invalid_input(
            "the expression is longer than 2000 characters"
        ))
    );
    let nested = format!("{}1{}", "(".repeat(100), ")".repeat(100));
    assert_eq!(
        calc(&nested).await,
        Err(ToolError::invalid_input(
            "the expression is nested more than 64 levels deep"
        ))
    );
    assert_eq!(
        Calculator::new().call(json!({"expr": "1"})).await,
        Err(ToolError::invalid_input(
            "expected {\"expression\": \"...\"}"
        ))
    );
}

#[tokio::test]
async fn calculator_reports_math_errors() {
    let failed = [
        ("1 / 0", "division by zero"),
        ("1 / (2 - 2)", "division by zero"),
        ("5 % 0", "division by zero (in %)"),
        ("0 ^ -1", "division by zero (0 to a negative power)"),
        ("10 ^ 400", "the power overflows (the result is too large)"),
        (
            "1e308 * 10",
            "the product overflows (the result is too large)",
        ),
        (
            "1e308 + 1e308",
            "the sum overflows (the result is too large)",
        ),
        (
            "exp(1000)",
            "the result of exp overflows (the result is too large)",
        ),
        ("sqrt(-4)", "sqrt of a negative number (-4)"),
        ("ln(0)", "ln is only defined for positive numbers"),
        ("log(8, 1)", "the base of log must be positive and not 1"),
        ("(-8) ^ 0.5", "the power is undefined"),
        ("7 // 0", "division by zero (in //)"),
        ("asin(2)", "asin is only defined from -1 to 1"),
        ("log2(0)", "log2 is only defined for positive numbers"),
        (
            "171!",
            "factorial is defined for whole numbers from 0 to 170, not 171",
        ),
        (
            "factorial(-1)",
            "factorial is defined for whole numbers from 0 to 170, not -1",
        ),
        (
            "2.5!",
            "factorial is defined for whole numbers from 0 to 170, not 2.5",
        ),
        ("√-4", "sqrt of a negative number (-4)"),
        // Found by the fuzzer: a lone literal beyond f64's range.
        (" 53e462", "the number 53e462 at position 2 is too large"),
    ];
    for (expression, message) in failed {
        assert_eq!(
            calc(expression).await,
            Err(ToolError::failed(message)),
            "{expression}"
        );
    }
}

#[test]
fn calculator_schema_rejects_wrong_arguments() {
    let schema = Calculator::new().parameters();
    assert!(validate(&schema, &json!({"expression": "1"})).is_empty());
    let problems: Vec<String> = validate(&schema, &json!({"expression": 1, "mode": "x"}))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        problems,
        [
            "$.expression: expected a string, got the number 1",
            "$.mode: unexpected property (allowed properties: \"expression\")"
        ]
    );
}

#[tokio::test]
async fn current_time_is_read_only_and_validates_input() {
    let tool = CurrentTime::new();
    assert!(tool.is_read_only());
    assert!(!tool.is_idempotent());
    let now = tool.call(json!({"format": "%Y"})).await.unwrap();
    assert!(now.parse::<i32>().unwrap() >= 2024);
    assert!(matches!(
        tool.call(json!({"utc_offset": "Mars/Olympus"})).await,
        Err(ToolError::InvalidInput { .. })
    ));
}

/// A root with `root/notes.txt`, `root/sub/deep.txt` and a secret outside
/// the root.
fn fixture() -> (TempDir, FileReader) {
    let scratch = tempfile::tempdir().expect("create a scratch directory");
    let root = scratch.path().join("root");
    std::fs::create_dir_all(root.join("sub")).expect("create root/sub");
    std::fs::write(root.join("notes.txt"), "hello {notes}").expect("write notes.txt");
    std::fs::write(root.join("sub/deep.txt"), "deep").expect("write deep.txt");
    std::fs::write(scratch.path().join("secret.txt"), "top secret").expect("write secret.txt");
    let reader = FileReader::new(&root).expect("a reader over the root");
    (scratch, reader)
}

async fn read(reader: &FileReader, path: &str) -> Result<String, ToolError> {
    reader.call(json!({ "path": path })).await
}

fn assert_refused(result: Result<String, ToolError>, fragment: &str) {
    match result {
        Err(ToolError::Refused { message }) => {
            assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
        }
        other => panic!("expected a refusal containing {fragment:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn file_reader_reads_inside_the_root() {
    let (_scratch, reader) = fixture();
    assert_eq!(
        read(&reader, "notes.txt").await.as_deref(),
        Ok("hello {notes}")
    );
    assert_eq!(read(&reader, "./sub/deep.txt").await.as_deref(), Ok("deep"));
    assert_eq!(read(&reader, "sub//deep.txt").await.as_deref(), Ok("deep"));
    assert_eq!(
        read(&reader, ".").await.as_deref(),
        Ok("\".\" is a directory; its entries: notes.txt, sub/")
    );
    assert!(reader.is_read_only() && reader.is_idempotent());
    assert_eq!(
        reader.call(json!("notes.txt")).await.as_deref(),
        Ok("hello {notes}")
    );
}

#[tokio::test]
async fn file_reader_takes_a_column_a_setting_a_row_or_one_value() {
    let (scratch, reader) = fixture();
    let root = scratch.path().join("root");
    std::fs::write(
        root.join("sales.csv"),
        "month,units,price\nMarch,140,14.00\nApril,110,16.25\n",
    )
    .expect("write sales.csv");
    std::fs::write(root.join("app.conf"), "name = sync\nport: 8080\n").expect("write app.conf");
    let call = |input: serde_json::Value| reader.call(input);
    assert_eq!(
        call(json!({"path": "sales.csv", "column": "units"}))
            .await
            .as_deref(),
        Ok("140, 110")
    );
    assert_eq!(
        call(json!({"path": "app.conf", "key": "port"}))
            .await
            .as_deref(),
        Ok("8080")
    );
    assert_eq!(
        call(json!({"path": "sales.csv", "key": "April"}))
            .await
            .as_deref(),
        Ok("month: April, units: 110, price: 16.25")
    );
    assert_eq!(
        call(json!({"path": "sales.csv", "key": "march", "column": "price"}))
            .await
            .as_deref(),
        Ok("14.00")
    );
    let error = call(json!({"path": "sales.csv", "key": "May", "column": "price"}))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("March, April"), "{error}");
    assert_eq!(
        error.allowed(),
        Some(("key", &["March".to_owned(), "April".into()][..]))
    );
}

#[tokio::test]
async fn file_reader_refuses_parent_components() {
    let (_scratch, reader) = fixture();
    for path in [
        "../secret.txt",
        "sub/../../secret.txt",
        "sub/../notes.txt",
        "..",
        "sub\\..\\..\\secret.txt",
    ] {
        assert_refused(
            read(&reader, path).await,
            "contains \"..\"; paths may not leave the root directory",
        );
    }
}

#[tokio::test]
async fn file_reader_refuses_absolute_paths() {
    let (scratch, reader) = fixture();
    let secret = scratch.path().join("secret.txt");
    let inside = reader.root().join("notes.txt");
    for path in [
        "/etc/passwd".to_string(),
        secret.display().to_string(),
        // Absolute even when it points inside the root.
        inside.display().to_string(),
        "\\windows\\system32".to_string(),
        "C:\\Windows\\win.ini".to_string(),
        "C:relative".to_string(),
    ] {
        assert_refused(read(&reader, &path).await, "is an absolute path");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn file_reader_refuses_symlinks_that_escape() {
    let (scratch, reader) = fixture();
    let root = reader.root().to_path_buf();
    std::os::unix::fs::symlink(scratch.path().join("secret.txt"), root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(scratch.path(), root.join("outside")).unwrap();
    std::os::unix::fs::symlink(root.join("notes.txt"), root.join("alias.txt")).unwrap();

    assert_refused(
        read(&reader, "link.txt").await,
        "\"link.txt\" leads outside the root directory (through a symbolic link)",
    );
    assert_refused(
        read(&reader, "outside/secret.txt").await,
        "leads outside the root directory",
    );
    // A link that stays inside the root is fine.
    assert_eq!(
        read(&reader, "alias.txt").await.as_deref(),
        Ok("hello {notes}")
    );
}

#[tokio::test]
async fn file_reader_other_errors_are_clear() {
    let (scratch, reader) = fixture();
    assert_eq!(
        read(&reader, "missing.txt").await,
        Err(ToolError::failed("\"missing.txt\" does not exist"))
    );
    assert_eq!(
        read(&reader, "").await,
        Err(ToolError::invalid_input("the path is empty"))
    );
    assert_refused(read(&reader, "a\0b").await, "NUL");
    std::fs::write(reader.root().join("bin.dat"), [0xff, 0xfe, 0x00, 0x80]).unwrap();
    assert_eq!(
        read(&reader, "bin.dat").await,
        Err(ToolError::failed(
            "\"bin.dat\" is not a text file (it is not valid UTF-8)"
        ))
    );
    assert_eq!(
        reader.call(json!({"file": "notes.txt"})).await,
        Err(ToolError::invalid_input("expected {\"path\": \"...\"}"))
    );
    assert!(FileReader::new(scratch.path().join("secret.txt")).is_err());
    assert!(FileReader::new(scratch.path().join("nope")).is_err());
}

#[tokio::test]
async fn file_reader_takes_paths_as_models_write_them() {
    let (_scratch, reader) = fixture();
    for path in [
        "\"notes.txt\"",
        "'notes.txt'",
        "`notes.txt`",
        "  notes.txt\n",
        "./notes.txt",
    ] {
        assert_eq!(
            read(&reader, path).await.as_deref(),
            Ok("hello {notes}"),
            "{path:?}"
        );
    }
    // Windows separators, where they are not separators.
    assert_eq!(read(&reader, "sub\\deep.txt").await.as_deref(), Ok("deep"));
    assert_eq!(
        read(&reader, ".\\sub\\deep.txt").await.as_deref(),
        Ok("deep")
    );
    // A directory is answered with its entries.
    assert_eq!(
        read(&reader, "sub/").await.as_deref(),
        Ok("\"sub/\" is a directory; its entries: deep.txt")
    );
    assert_eq!(
        read(&reader, "notes.txt/").await,
        Err(ToolError::failed(
            "\"notes.txt/\" cannot be opened: Not a directory (os error 20)"
        ))
    );
}

#[tokio::test]
async fn file_reader_refuses_every_spelling_of_an_escape() {
    let (_scratch, reader) = fixture();
    for path in [
        "..\\secret.txt",
        ".\\..\\secret.txt",
        "sub/..\\..\\secret.txt",
        "\"../secret.txt\"",
        "`..`",
        "sub/./../notes.txt",
    ] {
        assert_refused(read(&reader, path).await, "contains \"..\"");
    }
    for path in [
        "\\\\server\\share\\x",
        "file:///etc/passwd",
        "FILE:notes.txt",
        "'/etc/passwd'",
        "/",
    ] {
        assert_refused(read(&reader, path).await, "is an absolute path");
    }
    for path in ["notes.txt\0", "\0../secret.txt", "sub/\0"] {
        assert_refused(read(&reader, path).await, "NUL byte");
    }
    // Look-alikes are names, not escapes: they do not exist in the root.
    for path in [
        "%2e%2e/secret.txt",
        "....//secret.txt",
        "\u{2025}/secret.txt",
    ] {
        assert!(
            matches!(read(&reader, path).await, Err(ToolError::Failed { .. })),
            "{path:?}"
        );
    }
}

#[cfg(unix)]
#[tokio::test]
async fn file_reader_refuses_special_files_instead_of_blocking() {
    let (_scratch, reader) = fixture();
    let fifo = reader.root().join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mkfifo is not available");
        return;
    }
    // Opening a FIFO with no writer would block forever.
    let result = tokio::time::timeout(std::time::Duration::from_secs(5), read(&reader, "pipe"))
        .await
        .expect("the reader must not block on a FIFO");
    assert_refused(result, "\"pipe\" is not a regular file");
}

#[tokio::test]
async fn file_reader_cuts_large_files() {
    let (_scratch, reader) = fixture();
    let reader = reader.with_max_bytes(5);
    // "héllo wörld" is 13 bytes; 5 bytes end after "héll", 2 bytes end
    // inside the two-byte "é", which is dropped.
    std::fs::write(reader.root().join("big.txt"), "héllo wörld").unwrap();
    assert_eq!(
        read(&reader, "big.txt").await.as_deref(),
        Ok("héll\n[... cut: the file has 13 bytes, the first 5 are shown]")
    );
    let reader = reader.with_max_bytes(2);
    assert_eq!(
        read(&reader, "big.txt").await.as_deref(),
        Ok("h\n[... cut: the file has 13 bytes, the first 2 are shown]")
    );
}

#[test]
fn tool_schemas_are_objects_with_documented_properties() {
    let scratch = tempfile::tempdir().expect("create a scratch directory");
    let tools: Vec<Box<dyn Tool>> = vec![
        Box::new(Calculator::new()),
        Box::new(CurrentTime::new()),
        Box::new(FileReader::new(scratch.path()).unwrap()),
    ];
    for tool in tools {
        let schema = tool.parameters();
        assert_eq!(schema["type"], "object", "{}", tool.name());
        for (_, property) in schema["properties"].as_object().unwrap() {
            assert!(
                property
                    .get("description")
                    .and_then(Value::as_str)
                    .is_some()
            );
        }
        assert_eq!(tool.spec().name, tool.name());
    }
}
