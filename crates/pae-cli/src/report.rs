//! The run report: `pae show RUN --html FILE` and `pae run --html FILE`
//! write one self-contained HTML page (no network access: inline CSS, SVG
//! and a few lines of script, and a Content-Security-Policy that forbids
//! loading anything) built from the run store alone, so it works for any
//! stored run: the plan as a dependency graph, a timeline of steps and
//! their model and tool calls (parallel steps overlap), each step's calls
//! with inputs and results, token use per step, plan revisions, retries
//! and repairs. `pae show RUN --mermaid` prints the plan graph as a
//! Mermaid flowchart for Markdown.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use pae_core::store::{
    CallKind, CallScope, CallState, JournalEntry, PlanRevision, RunRecord, RunStore, StepRecord,
    StoredEvent,
};
use pae_core::{EventKind, Plan, RunId, StepStatus, TokenUsage};
use serde_json::Value;

use crate::clock::utc;
use crate::exit::{Failure, FailureKind};

/// Everything the report is made of, read from the store.
pub(crate) struct RunData {
    record: RunRecord,
    plans: Vec<PlanRevision>,
    steps: Vec<StepRecord>,
    journal: Vec<JournalEntry>,
    events: Vec<StoredEvent>,
}

/// Reads a run from the store.
pub(crate) async fn load(store: &dyn RunStore, id: &RunId) -> Result<RunData, Failure> {
    let fail = |err: pae_core::StoreError| Failure::from_error(&err, "the run store");
    Ok(RunData {
        record: store.run(id).await.map_err(fail)?,
        plans: store.plans(id).await.map_err(fail)?,
        steps: store.steps(id).await.map_err(fail)?,
        journal: store.journal_all(id).await.map_err(fail)?,
        events: store.events(id, None).await.map_err(fail)?,
    })
}

/// Writes the HTML report of run `id` to `path` (beside it, then renamed
/// into place).
pub(crate) async fn write_html(
    store: &dyn RunStore,
    id: &RunId,
    path: &Path,
) -> Result<(), Failure> {
    use std::io::Write;
    let data = load(store, id).await?;
    let page = html(&data);
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let fail = |err: &dyn std::fmt::Display| {
        Failure::new(
            FailureKind::Usage,
            format!("cannot write the report {}: {err}", path.display()),
        )
    };
    let mut file = tempfile::NamedTempFile::new_in(parent).map_err(|e| fail(&e))?;
    file.write_all(page.as_bytes()).map_err(|e| fail(&e))?;
    file.persist(path).map_err(|e| fail(&e.error))?;
    Ok(())
}

/// Text for HTML (element content and attribute values).
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `text`, on one line.
fn short(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.chars().count() <= max {
        return flat.to_owned();
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn status_name(status: &StepStatus) -> &'static str {
    match status {
        StepStatus::Completed => "completed",
        StepStatus::Stopped { .. } => "stopped",
        StepStatus::Failed { .. } => "failed",
        StepStatus::Skipped { .. } => "skipped",
    }
}

impl RunData {
    /// The plan shown: the latest revision.
    fn plan(&self) -> Plan {
        self.plans
            .last()
            .map(|p| p.plan.clone())
            .unwrap_or_default()
    }

    fn revision(&self) -> u32 {
        self.plans.last().map_or(0, |p| p.revision)
    }

    /// The committed record of step `index` of the latest plan: of the
    /// latest revision, or of an earlier one (steps that ran before a
    /// revision stay first in it).
    fn committed(&self, index: usize) -> Option<&StepRecord> {
        self.steps
            .iter()
            .filter(|s| s.index == index)
            .max_by_key(|s| s.revision)
    }

    /// The status of step `index` of the latest plan.
    fn status(&self, index: usize) -> &'static str {
        match self.committed(index) {
            Some(record) => status_name(&record.response.status),
            None if self.in_flight(index) => "unfinished",
            None => "pending",
        }
    }

    /// Whether step `index` of the latest revision has calls on record
    /// but no commit.
    fn in_flight(&self, index: usize) -> bool {
        let revision = self.revision();
        self.journal
            .iter()
            .any(|e| e.scope == CallScope::Step { revision, index })
    }

    /// The calls of a scope, in order.
    fn calls(&self, scope: &CallScope) -> Vec<&JournalEntry> {
        let mut calls: Vec<&JournalEntry> =
            self.journal.iter().filter(|e| &e.scope == scope).collect();
        calls.sort_by_key(|e| e.seq);
        calls
    }

    /// Prompts and replies recorded in `ModelCalled` events (runs with
    /// message content), by step and call number.
    fn recorded_messages(&self) -> HashMap<(Option<usize>, u32), (Value, Value)> {
        let mut found = HashMap::new();
        for stored in &self.events {
            if let EventKind::ModelCalled {
                step_index,
                call,
                prompt: Some(prompt),
                reply,
                ..
            } = &stored.event.kind
            {
                found.insert(
                    (*step_index, *call),
                    (
                        serde_json::to_value(prompt).unwrap_or_default(),
                        serde_json::to_value(reply).unwrap_or_default(),
                    ),
                );
            }
        }
        found
    }
}

/// The layer of each step in the graph: 0 without dependencies, else one
/// below its deepest dependency. A plan without dependencies runs in order,
/// so it is drawn as a chain.
fn layout(plan: &Plan) -> (Vec<usize>, Vec<(usize, usize)>, bool) {
    let n = plan.len();
    if !plan.has_dependencies() {
        let edges = (1..n).map(|i| (i - 1, i)).collect();
        return ((0..n).collect(), edges, true);
    }
    let deps = plan
        .dependency_indices()
        .unwrap_or_else(|_| vec![Vec::new(); n]);
    let mut depth = vec![0usize; n];
    // Relaxation: a valid plan has no cycle, so n passes settle it.
    for _ in 0..n {
        let mut changed = false;
        for i in 0..n {
            let want = deps[i]
                .iter()
                .filter(|&&d| d < n)
                .map(|&d| depth[d] + 1)
                .max()
                .unwrap_or(0);
            if want != depth[i] && want <= n {
                depth[i] = want;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let edges = deps
        .iter()
        .enumerate()
        .flat_map(|(i, ds)| ds.iter().filter(|&&d| d < n).map(move |&d| (d, i)))
        .collect();
    (depth, edges, false)
}

/// The plan as a Mermaid flowchart.
pub(crate) fn mermaid(data: &RunData) -> String {
    let plan = data.plan();
    let (_, edges, _) = layout(&plan);
    let mut out = String::from("flowchart TD\n");
    for (i, step) in plan.steps.iter().enumerate() {
        let label = short(&step.value, 80)
            .replace('"', "#quot;")
            .replace('<', "#lt;")
            .replace('>', "#gt;");
        let _ = writeln!(out, "    s{}[\"{}. {label}\"]", i + 1, i + 1);
    }
    for (from, to) in &edges {
        let _ = writeln!(out, "    s{} --> s{}", from + 1, to + 1);
    }
    let _ = writeln!(
        out,
        "    classDef completed fill:#d9f2d9,stroke:#2e7d32\n    classDef failed fill:#fbdada,stroke:#c62828\n    classDef stopped fill:#fff1cc,stroke:#b7791f\n    classDef skipped fill:#eeeeee,stroke:#9e9e9e,stroke-dasharray: 4 3\n    classDef unfinished fill:#e3ecfb,stroke:#1e5bb8\n    classDef pending fill:#ffffff,stroke:#9e9e9e"
    );
    let mut by_status: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for i in 0..plan.len() {
        by_status
            .entry(data.status(i))
            .or_default()
            .push(format!("s{}", i + 1));
    }
    for (status, nodes) in by_status {
        let _ = writeln!(out, "    class {} {status}", nodes.join(","));
    }
    out
}

const NODE_W: f64 = 200.0;
const NODE_H: f64 = 56.0;
const GAP_X: f64 = 18.0;
const GAP_Y: f64 = 36.0;

/// The plan graph as inline SVG.
fn graph_svg(data: &RunData) -> String {
    let plan = data.plan();
    if plan.is_empty() {
        return "<p class=\"muted\">No plan was stored.</p>".to_owned();
    }
    let (depth, edges, chain) = layout(&plan);
    let layers = depth.iter().copied().max().unwrap_or(0) + 1;
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layers];
    for (i, &d) in depth.iter().enumerate() {
        rows[d].push(i);
    }
    let widest = rows.iter().map(Vec::len).max().unwrap_or(1).max(1) as f64;
    let width = widest * (NODE_W + GAP_X) + GAP_X;
    let height = layers as f64 * (NODE_H + GAP_Y) + GAP_Y;
    let mut position = vec![(0.0, 0.0); plan.len()];
    for (layer, members) in rows.iter().enumerate() {
        let row_width = members.len() as f64 * (NODE_W + GAP_X) - GAP_X;
        let left = (width - row_width) / 2.0;
        for (k, &i) in members.iter().enumerate() {
            position[i] = (
                left + k as f64 * (NODE_W + GAP_X),
                GAP_Y / 2.0 + layer as f64 * (NODE_H + GAP_Y),
            );
        }
    }
    let mut svg = format!(
        "<svg class=\"graph\" id=\"plan-graph\" xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" \
         role=\"img\" aria-label=\"plan graph\" data-chain=\"{chain}\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" \
         markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" \
         fill=\"#8a94a6\"/></marker></defs>"
    );
    for &(from, to) in &edges {
        let (fx, fy) = position[from];
        let (tx, ty) = position[to];
        let (x1, y1) = (fx + NODE_W / 2.0, fy + NODE_H);
        let (x2, y2) = (tx + NODE_W / 2.0, ty);
        let mid = (y1 + y2) / 2.0;
        let _ = write!(
            svg,
            "<path class=\"edge\" data-from=\"{}\" data-to=\"{}\" d=\"M {x1:.1} {y1:.1} C {x1:.1} \
             {mid:.1}, {x2:.1} {mid:.1}, {x2:.1} {:.1}\" marker-end=\"url(#arrow)\"/>",
            from + 1,
            to + 1,
            y2 - 2.0
        );
    }
    for (i, step) in plan.steps.iter().enumerate() {
        let (x, y) = position[i];
        let status = data.status(i);
        let label = format!("{}. {}", i + 1, step.value);
        let line1 = short(&label, 29);
        let rest: String = label
            .chars()
            .skip(line1.chars().count().saturating_sub(1))
            .collect();
        let line2 = if line1.ends_with('…') {
            short(&rest, 29)
        } else {
            String::new()
        };
        let line1 = line1.trim_end_matches('…');
        let _ = write!(
            svg,
            "<g class=\"node {status}\" data-step=\"{}\"><title>{}</title>\
             <rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"8\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text><text x=\"{:.1}\" y=\"{:.1}\">{}</text>\
             <text class=\"badge\" x=\"{:.1}\" y=\"{:.1}\">{status}</text></g>",
            i + 1,
            esc(&step.value),
            x + 10.0,
            y + 20.0,
            esc(line1),
            x + 10.0,
            y + 36.0,
            esc(&line2),
            x + 10.0,
            y + 51.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A row of the timeline: a label, its main bar and the calls in it.
struct Row {
    label: String,
    class: &'static str,
    attrs: String,
    span: Option<(u64, u64)>,
    calls: Vec<(CallKind, u64, u64, String)>,
}

fn call_spans(calls: &[&JournalEntry]) -> Vec<(CallKind, u64, u64, String)> {
    calls
        .iter()
        .map(|e| {
            (
                e.kind,
                e.started_at_ms,
                e.finished_at_ms.unwrap_or(e.started_at_ms),
                e.name.clone(),
            )
        })
        .collect()
}

const LABEL_W: f64 = 170.0;
const PLOT_W: f64 = 860.0;
const ROW_H: f64 = 30.0;

/// The timeline as inline SVG: one row for planning, one per step that
/// ran, one per replanning.
fn timeline_svg(data: &RunData) -> String {
    let mut rows: Vec<Row> = Vec::new();
    let plan_calls = data.calls(&CallScope::Plan);
    if !plan_calls.is_empty() {
        let spans = call_spans(&plan_calls);
        let span = spans
            .iter()
            .map(|c| c.1)
            .min()
            .zip(spans.iter().map(|c| c.2).max());
        rows.push(Row {
            label: "planning".to_owned(),
            class: "planning",
            attrs: String::new(),
            span,
            calls: spans,
        });
    }
    let mut records: Vec<&StepRecord> = data.steps.iter().collect();
    records.sort_by_key(|s| (s.started_at_ms, s.revision, s.index));
    let mut replans: Vec<u32> = data
        .journal
        .iter()
        .filter_map(|e| match e.scope {
            CallScope::Replan { revision } => Some(revision),
            _ => None,
        })
        .collect();
    replans.sort_unstable();
    replans.dedup();
    for record in records {
        let scope = CallScope::Step {
            revision: record.revision,
            index: record.index,
        };
        let calls = call_spans(&data.calls(&scope));
        let status = status_name(&record.response.status);
        let label = if record.revision > 0 {
            format!("step {} (rev {})", record.index + 1, record.revision)
        } else {
            format!("step {}", record.index + 1)
        };
        rows.push(Row {
            label: format!("{label}: {}", short(&record.step.value, 14)),
            class: status,
            attrs: format!(
                " data-step=\"{}\" data-revision=\"{}\" data-start-ms=\"{}\" data-end-ms=\"{}\"",
                record.index + 1,
                record.revision,
                record.started_at_ms,
                record.finished_at_ms
            ),
            span: Some((record.started_at_ms, record.finished_at_ms)),
            calls,
        });
    }
    // Steps with calls on record but no commit (the run stopped in them).
    let revision = data.revision();
    for index in 0..data.plan().len() {
        if data.committed(index).is_none() && data.in_flight(index) {
            let calls = call_spans(&data.calls(&CallScope::Step { revision, index }));
            let start = calls.iter().map(|c| c.1).min();
            let end = calls.iter().map(|c| c.2).max();
            rows.push(Row {
                label: format!("step {} (unfinished)", index + 1),
                class: "unfinished",
                attrs: format!(" data-step=\"{}\" data-revision=\"{revision}\"", index + 1),
                span: start.zip(end),
                calls,
            });
        }
    }
    for revision in replans {
        let calls = call_spans(&data.calls(&CallScope::Replan { revision }));
        let span = calls
            .iter()
            .map(|c| c.1)
            .min()
            .zip(calls.iter().map(|c| c.2).max());
        rows.push(Row {
            label: format!("replanning after rev {revision}"),
            class: "planning",
            attrs: String::new(),
            span,
            calls,
        });
    }
    if rows.is_empty() {
        return "<p class=\"muted\">Nothing ran yet.</p>".to_owned();
    }
    let starts = rows.iter().flat_map(|r| {
        r.span
            .map(|s| s.0)
            .into_iter()
            .chain(r.calls.iter().map(|c| c.1))
    });
    let ends = rows.iter().flat_map(|r| {
        r.span
            .map(|s| s.1)
            .into_iter()
            .chain(r.calls.iter().map(|c| c.2))
    });
    let t0 = starts.min().unwrap_or(data.record.created_at_ms);
    let t1 = ends.max().unwrap_or(t0).max(t0 + 1);
    let scale = PLOT_W / (t1 - t0) as f64;
    let x = |t: u64| LABEL_W + (t.saturating_sub(t0)) as f64 * scale;
    let height = rows.len() as f64 * ROW_H + 40.0;
    let width = LABEL_W + PLOT_W + 20.0;
    let mut svg = format!(
        "<svg class=\"timeline\" id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" \
         role=\"img\" aria-label=\"timeline\" data-t0=\"{t0}\" data-t1=\"{t1}\">"
    );
    // Time axis: five ticks.
    let axis_y = rows.len() as f64 * ROW_H + 8.0;
    for k in 0..=4 {
        let t = t0 + (t1 - t0) * k / 4;
        let tx = x(t);
        let _ = write!(
            svg,
            "<line class=\"tick\" x1=\"{tx:.1}\" y1=\"0\" x2=\"{tx:.1}\" y2=\"{axis_y:.1}\"/>\
             <text class=\"axis\" x=\"{tx:.1}\" y=\"{:.1}\">{:.2}s</text>",
            axis_y + 16.0,
            (t - t0) as f64 / 1000.0
        );
    }
    for (r, row) in rows.iter().enumerate() {
        let y = r as f64 * ROW_H + 4.0;
        let _ = write!(
            svg,
            "<text class=\"row-label\" x=\"4\" y=\"{:.1}\">{}</text>",
            y + 15.0,
            esc(&row.label)
        );
        if let Some((start, end)) = row.span {
            let bx = x(start);
            let bw = (x(end) - bx).max(2.0);
            let _ = write!(
                svg,
                "<rect class=\"bar step {}\"{} x=\"{bx:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" \
                 height=\"22\" rx=\"3\"><title>{}: {:.0} ms</title></rect>",
                row.class,
                row.attrs,
                esc(&row.label),
                end.saturating_sub(start) as f64
            );
        }
        for (kind, start, end, name) in &row.calls {
            let (class, dy) = match kind {
                CallKind::Model => ("model", 2.0),
                CallKind::Tool => ("tool", 12.0),
            };
            let bx = x(*start);
            let bw = (x(*end) - bx).max(2.0);
            let _ = write!(
                svg,
                "<rect class=\"bar call {class}\" data-name=\"{}\" x=\"{bx:.1}\" y=\"{:.1}\" \
                 width=\"{bw:.1}\" height=\"8\" rx=\"2\"><title>{class} {}: {:.0} ms</title></rect>",
                esc(name),
                y + dy,
                esc(name),
                end.saturating_sub(*start) as f64
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn pretty(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// What a journaled call returned, for people.
fn call_result(entry: &JournalEntry) -> String {
    match entry.kind {
        CallKind::Tool => match (entry.result.get("ok"), entry.result.get("error")) {
            (Some(ok), _) => pretty(ok),
            (_, Some(error)) => format!("error: {}", pretty(error)),
            _ if entry.state == CallState::Started => "(started, no result on record)".to_owned(),
            _ => pretty(&entry.result),
        },
        CallKind::Model => {
            let message = &entry.result["message"];
            let mut text = message["content"].as_str().unwrap_or_default().to_owned();
            for call in message["tool_calls"].as_array().into_iter().flatten() {
                let _ = write!(
                    text,
                    "\n→ {}({})",
                    call["name"].as_str().unwrap_or_default(),
                    call["arguments"]
                );
            }
            text
        }
    }
}

fn usage_text(usage: TokenUsage) -> String {
    format!(
        "{} tokens ({} prompt + {} completion)",
        usage.total_tokens(),
        usage.prompt_tokens,
        usage.completion_tokens
    )
}

/// The calls of one scope as a table.
fn calls_table(
    data: &RunData,
    scope: &CallScope,
    messages: &HashMap<(Option<usize>, u32), (Value, Value)>,
) -> String {
    let calls = data.calls(scope);
    if calls.is_empty() {
        return "<p class=\"muted\">No model or tool call on record.</p>".to_owned();
    }
    let mut out = String::from(
        "<table class=\"calls\"><thead><tr><th>#</th><th>call</th><th>time</th><th>tokens</th>\
         <th>input</th><th>result</th></tr></thead><tbody>",
    );
    for entry in calls {
        let kind = match entry.kind {
            CallKind::Model => "model",
            CallKind::Tool => "tool",
        };
        let took = entry
            .finished_at_ms
            .map(|f| format!("{} ms", f.saturating_sub(entry.started_at_ms)))
            .unwrap_or_else(|| "—".to_owned());
        let mut input = pretty(&entry.request);
        if entry.kind == CallKind::Model
            && let Some((prompt, _)) = messages.get(&(scope.step_index(), entry.seq))
        {
            input = format!("{input}\n\nprompt:\n{}", pretty(prompt));
        }
        let tokens = if entry.kind == CallKind::Model {
            entry.usage.total_tokens().to_string()
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "<tr class=\"call {kind}\"><td>{}</td><td><span class=\"kind {kind}\">{kind}</span> {}</td>\
             <td>{took}</td><td>{tokens}</td><td><pre>{}</pre></td><td><pre>{}</pre></td></tr>",
            entry.seq,
            esc(&entry.name),
            esc(&short_block(&input, 4000)),
            esc(&short_block(&call_result(entry), 4000)),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// At most `max` characters of a block of text.
fn short_block(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max).collect();
    format!("{kept}… ({} more characters)", text.chars().count() - max)
}

/// The page.
pub(crate) fn html(data: &RunData) -> String {
    let record = &data.record;
    let plan = data.plan();
    let messages = data.recorded_messages();
    let mut body = String::new();
    let answer = record.ending.output.as_deref().unwrap_or("");
    let _ = write!(
        body,
        "<header><h1>{}</h1><p class=\"meta\">run <code>{}</code> · <span class=\"status {}\">{}</span> \
         · created {} · {} step(s) committed · {} · {} model call(s), {} tool call(s) · {:.1}s</p>",
        esc(&record.objective),
        esc(record.id.as_str()),
        esc(record.status.as_str()),
        esc(record.status.as_str()),
        esc(&utc(record.created_at_ms)),
        data.steps.len(),
        esc(&usage_text(record.spent.usage)),
        record.spent.model_calls,
        record.spent.tool_calls,
        record.spent.wall_ms as f64 / 1000.0
    );
    if !answer.is_empty() {
        let _ = write!(
            body,
            "<div class=\"answer\"><h2>Answer</h2><pre id=\"answer\">{}</pre></div>",
            esc(answer)
        );
    }
    if let Some(reason) = &record.ending.interruption {
        let _ = write!(
            body,
            "<p class=\"problem\">Interrupted: {}</p>",
            esc(&reason.to_string())
        );
    } else if let Some(error) = &record.ending.error {
        let _ = write!(body, "<p class=\"problem\">Error: {}</p>", esc(error));
    }
    body.push_str("</header>");

    let _ = write!(
        body,
        "<section id=\"plan\"><h2>Plan{}</h2><div class=\"scroll\">{}</div></section>",
        if data.plans.len() > 1 {
            format!(" (revision {})", data.revision())
        } else {
            String::new()
        },
        graph_svg(data)
    );
    let _ = write!(
        body,
        "<section id=\"timeline-section\"><h2>Timeline</h2><p class=\"muted\">Bars are steps; \
         the thin bars in them their model calls (top) and tool calls (bottom). At most \
         <strong id=\"concurrency\">?</strong> step(s) ran at once.</p>\
         <div class=\"scroll\">{}</div></section>",
        timeline_svg(data)
    );

    // Steps with their calls.
    body.push_str("<section id=\"steps\"><h2>Steps</h2>");
    let plan_scope = CallScope::Plan;
    if !data.calls(&plan_scope).is_empty() {
        let _ = write!(
            body,
            "<details class=\"phase\"><summary>Planning</summary>{}</details>",
            calls_table(data, &plan_scope, &messages)
        );
    }
    let mut shown: Vec<&StepRecord> = data.steps.iter().collect();
    shown.sort_by_key(|s| (s.revision, s.index));
    let revision = data.revision();
    for record in &shown {
        let status = status_name(&record.response.status);
        let scope = CallScope::Step {
            revision: record.revision,
            index: record.index,
        };
        let detail = match &record.response.status {
            StepStatus::Completed => String::new(),
            StepStatus::Stopped { reason } | StepStatus::Skipped { reason } => {
                format!("<p class=\"problem\">{}</p>", esc(reason))
            }
            StepStatus::Failed { error } => format!("<p class=\"problem\">{}</p>", esc(error)),
        };
        let _ = write!(
            body,
            "<details class=\"step {status}\" id=\"step-{}-{}\" data-step=\"{}\" data-status=\"{status}\">\
             <summary><span class=\"num\">{}</span> {} <span class=\"status {status}\">{status}</span> \
             <span class=\"muted\">{:.2}s · {} tokens{}</span></summary>{detail}\
             <h4>Response</h4><pre class=\"response\">{}</pre><h4>Calls</h4>{}</details>",
            record.revision,
            record.index,
            record.index + 1,
            record.index + 1,
            esc(&record.step.value),
            record.finished_at_ms.saturating_sub(record.started_at_ms) as f64 / 1000.0,
            record.response.usage.total_tokens(),
            if record.revision == revision {
                String::new()
            } else {
                format!(" · revision {}", record.revision)
            },
            esc(&short_block(&record.response.response, 20_000)),
            calls_table(data, &scope, &messages),
        );
    }
    for (index, step) in plan.steps.iter().enumerate() {
        if data.committed(index).is_some() {
            continue;
        }
        let status = data.status(index);
        let _ = write!(
            body,
            "<details class=\"step {status}\" data-step=\"{}\" data-status=\"{status}\"><summary>\
             <span class=\"num\">{}</span> {} <span class=\"status {status}\">{status}</span></summary>{}</details>",
            index + 1,
            index + 1,
            esc(&step.value),
            calls_table(data, &CallScope::Step { revision, index }, &messages),
        );
    }
    for replan in data.journal.iter().filter_map(|e| match e.scope {
        CallScope::Replan { revision } if e.seq == 0 => Some(revision),
        _ => None,
    }) {
        let _ = write!(
            body,
            "<details class=\"phase\"><summary>Replanning after revision {replan}</summary>{}</details>",
            calls_table(data, &CallScope::Replan { revision: replan }, &messages)
        );
    }
    body.push_str("</section>");

    // Tokens per step.
    let most = data
        .steps
        .iter()
        .map(|s| s.response.usage.total_tokens())
        .max()
        .unwrap_or(0)
        .max(1);
    let planning: TokenUsage = data
        .journal
        .iter()
        .filter(|e| !matches!(e.scope, CallScope::Step { .. }))
        .map(|e| e.usage)
        .sum();
    body.push_str(
        "<section id=\"tokens\"><h2>Tokens</h2><table class=\"tokens\"><thead><tr><th>step</th>\
         <th>prompt</th><th>completion</th><th>total</th><th></th></tr></thead><tbody>",
    );
    let _ = write!(
        body,
        "<tr><td>planning and replanning</td><td>{}</td><td>{}</td><td>{}</td><td></td></tr>",
        planning.prompt_tokens,
        planning.completion_tokens,
        planning.total_tokens()
    );
    for record in &shown {
        let usage = record.response.usage;
        let _ = write!(
            body,
            "<tr data-step=\"{}\"><td>{}. {}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td><div class=\"meter\" style=\"width:{:.0}px\"></div></td></tr>",
            record.index + 1,
            record.index + 1,
            esc(&short(&record.step.value, 60)),
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens(),
            usage.total_tokens() as f64 / most as f64 * 200.0
        );
    }
    let _ = write!(
        body,
        "<tr class=\"total\"><td>run</td><td>{}</td><td>{}</td><td>{}</td><td></td></tr></tbody></table></section>",
        record.spent.usage.prompt_tokens,
        record.spent.usage.completion_tokens,
        record.spent.usage.total_tokens()
    );

    // Plan revisions.
    body.push_str("<section id=\"revisions\"><h2>Plan revisions</h2>");
    for revision in &data.plans {
        let _ = write!(
            body,
            "<div class=\"revision\" data-revision=\"{}\"><h3>Revision {} <span class=\"muted\">\
             {:?}{} · {}</span></h3><ol>",
            revision.revision,
            revision.revision,
            revision.source,
            if revision.approved { ", approved" } else { "" },
            esc(&utc(revision.created_at_ms))
        );
        for step in &revision.plan.steps {
            let after = if step.depends_on.is_empty() {
                String::new()
            } else {
                format!(
                    " <span class=\"muted\">(after {})</span>",
                    esc(&step.depends_on.join(", "))
                )
            };
            let _ = write!(body, "<li>{}{after}</li>", esc(&step.value));
        }
        body.push_str("</ol></div>");
    }
    body.push_str("</section>");

    // Retries, repairs and other notes from the events.
    let notes: Vec<String> = data
        .events
        .iter()
        .filter_map(|stored| match &stored.event.kind {
            EventKind::Retrying {
                step_index,
                attempt,
                wait_ms,
                error,
                ..
            } => Some(format!(
                "{}: model call attempt {attempt} failed ({error}); retried after {:.0} ms",
                step_index.map_or("planning".to_owned(), |i| format!("step {}", i + 1)),
                wait_ms
            )),
            EventKind::Repaired {
                step_index,
                kind,
                detail,
            } => Some(format!(
                "{}: {kind}: {detail}",
                step_index.map_or("planning".to_owned(), |i| format!("step {}", i + 1))
            )),
            EventKind::RunResumed { session, .. } => Some(format!("resumed (session {session})")),
            EventKind::RunInterrupted { reason } => Some(format!("interrupted: {reason}")),
            _ => None,
        })
        .collect();
    if !notes.is_empty() {
        body.push_str("<section id=\"notes\"><h2>Retries, repairs and interruptions</h2><ul>");
        for note in notes {
            let _ = write!(body, "<li>{}</li>", esc(&note));
        }
        body.push_str("</ul></section>");
    }

    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>pae run {}</title><style>{STYLE}</style></head><body>{body}<script>{SCRIPT}</script>\
         </body></html>\n",
        esc(record.id.as_str())
    )
}

const STYLE: &str = "\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1100px;\
padding:0 16px;color:#1d2330;background:#fbfbfd}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e3e6ee;\
padding-bottom:4px}h4{margin:10px 0 4px;font-size:13px;color:#555}\
.meta,.muted{color:#6b7385}.problem{color:#b3261e}code{font-size:13px}\
pre{white-space:pre-wrap;word-break:break-word;margin:0;font-size:12.5px;background:#f3f4f8;\
padding:6px 8px;border-radius:4px;max-height:320px;overflow:auto}\
.answer pre{font-size:14px;background:#eef7ee}\
.scroll{overflow-x:auto}\
.status{font-size:12px;padding:1px 7px;border-radius:9px;background:#e6e8ef}\
.status.completed,.status.succeeded{background:#d9f2d9;color:#1f6b24}\
.status.failed{background:#fbdada;color:#9c1f1f}.status.stopped{background:#fff1cc;color:#8a5a00}\
.status.skipped,.status.pending{background:#eeeeee;color:#666}\
.status.unfinished,.status.running,.status.interrupted{background:#e3ecfb;color:#1e5bb8}\
svg text{font-size:12px;fill:#1d2330}svg .badge{font-size:10px;fill:#6b7385}\
.node rect{fill:#fff;stroke:#9aa3b5;stroke-width:1.2}.node.completed rect{fill:#eef9ee;stroke:#2e7d32}\
.node.failed rect{fill:#fdeeee;stroke:#c62828}.node.stopped rect{fill:#fff8e1;stroke:#b7791f}\
.node.skipped rect{fill:#f4f4f4;stroke:#9e9e9e;stroke-dasharray:4 3}\
.node.unfinished rect{fill:#eef3fd;stroke:#1e5bb8}\
.edge{fill:none;stroke:#8a94a6;stroke-width:1.4}\
.tick{stroke:#e3e6ee}.axis{fill:#6b7385;font-size:11px;text-anchor:middle}\
.bar.step{fill:#b9d8b9}.bar.step.failed{fill:#f2b8b5}.bar.step.stopped{fill:#ffe08a}\
.bar.step.skipped{fill:#dddddd}.bar.step.planning{fill:#c9d3ea}.bar.step.unfinished{fill:#bcd0f5}\
.bar.call.model{fill:#3f6fd1}.bar.call.tool{fill:#e07b00}\
details{background:#fff;border:1px solid #e3e6ee;border-radius:6px;margin:6px 0;padding:6px 10px}\
summary{cursor:pointer}.num{display:inline-block;min-width:22px;font-weight:600}\
table{border-collapse:collapse;width:100%;margin:6px 0}th,td{text-align:left;vertical-align:top;\
padding:4px 6px;border-bottom:1px solid #eceef3;font-size:13px}\
table.calls td pre{max-height:180px}.kind{font-size:11px;padding:0 5px;border-radius:3px;color:#fff}\
.kind.model{background:#3f6fd1}.kind.tool{background:#e07b00}\
.meter{height:10px;background:#3f6fd1;border-radius:2px}tr.total td{font-weight:600}\
.revision h3{font-size:14px;margin:10px 0 2px}";

/// Counts, from the bars as laid out, the most steps running at once, and
/// shows it; the page works without it.
const SCRIPT: &str = "\
(function(){var bars=[].slice.call(document.querySelectorAll('#timeline rect.bar.step[data-step]'));\
var points=[];bars.forEach(function(b){var r=b.getBoundingClientRect();\
points.push([r.left+0.5,1]);points.push([r.right-0.5,-1]);});\
points.sort(function(a,b){return a[0]-b[0]||a[1]-b[1];});var now=0,most=0;\
points.forEach(function(p){now+=p[1];if(now>most){most=now;}});\
var out=document.getElementById('concurrency');if(out){out.textContent=String(most);}\
var svg=document.getElementById('timeline');if(svg){svg.setAttribute('data-max-concurrency',String(most));}\
document.body.setAttribute('data-rendered','true');})();";

#[cfg(test)]
mod tests {
    use super::*;
    use pae_core::Step;

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(esc("<b a=\"1\">&'"), "&lt;b a=&quot;1&quot;&gt;&amp;&#39;");
        assert_eq!(esc("x\u{1b}y"), "x\\u{1b}y");
    }

    #[test]
    fn dependency_plans_are_laid_out_in_layers_and_others_as_a_chain() {
        let chain = Plan::new(["a", "b", "c"]);
        assert_eq!(layout(&chain), (vec![0, 1, 2], vec![(0, 1), (1, 2)], true));
        let fan: Plan = [
            Step::new("a").with_id("a"),
            Step::new("b").with_id("b"),
            Step::new("c").with_id("c").with_depends_on(["a", "b"]),
        ]
        .into_iter()
        .collect();
        let (depth, edges, is_chain) = layout(&fan);
        assert_eq!(depth, vec![0, 0, 1]);
        assert_eq!(edges, vec![(0, 2), (1, 2)]);
        assert!(!is_chain);
    }
}
