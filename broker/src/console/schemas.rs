//! The schema registry's subjects (`schema_registry/`): the list with each subject's latest version, its id and
//! compatibility level, and a subject's versions with the schema of the one picked, pretty-printed. Read from
//! this node's copy of the registry; the forms that change it are `schema_changes.rs`'.

use super::html::{url_encode, Form, Html};
use super::layout::Page;
use super::topics::pager;
use super::Console;
use crate::metrics::admin_http::Response;
use crate::schema_registry::registry::VersionRef;

const SUBJECTS_PER_PAGE: usize = 100;

pub fn list(console: &Console, page: Page<'_>, query: &Form) -> Response {
    let registry = console.node.schemas.snapshot();
    let search = query.get("q").unwrap_or("");
    let needle = search.to_lowercase();
    let subjects: Vec<String> =
        registry.subject_names(false, "").into_iter().filter(|s| s.to_lowercase().contains(&needle)).collect();
    let page_count = subjects.len().div_ceil(SUBJECTS_PER_PAGE).max(1);
    let number = match query.number::<usize>("page", "a page number (1 or more)") {
        Ok(number) => number.unwrap_or(1).clamp(1, page_count),
        Err(message) => return page.error(400, "Bad page number", &message),
    };
    let mut body = Html::new();
    body.raw("<div class=\"stats\"><div class=\"stat\"><b>").text(subjects.len()).raw("</b>subjects</div>");
    body.raw("<div class=\"stat\"><b>").text(registry.schemas.len()).raw("</b>schemas</div>");
    body.raw("<div class=\"stat\"><b>").text(registry.compatibility.name()).raw("</b>compatibility</div></div>");
    body.raw("<form method=\"get\" action=\"/schemas\"><input type=\"search\" name=\"q\" placeholder=\"search subjects\" value=\"");
    body.text(search).raw("\"> <button>Search</button></form>");
    body.raw("<table id=\"subjects\"><tr><th>subject</th><th class=\"num\">versions</th>");
    body.raw("<th class=\"num\">latest</th><th class=\"num\">id</th><th>compatibility</th></tr>");
    for subject in &subjects[(number - 1) * SUBJECTS_PER_PAGE..subjects.len().min(number * SUBJECTS_PER_PAGE)] {
        let versions = registry.versions(subject, false).unwrap_or_default();
        let Ok(latest) = registry.version(subject, VersionRef::Latest, false) else { continue };
        body.raw("<tr><td>").link(&format!("/schemas/{}", url_encode(subject)), subject).raw("</td>");
        body.raw("<td class=\"num\">").text(versions.len()).raw("</td><td class=\"num\">").text(latest.version);
        body.raw("</td><td class=\"num\">").text(latest.id).raw("</td>");
        body.cell(registry.effective_compatibility(subject).name()).raw("</tr>");
    }
    body.raw("</table>");
    if subjects.is_empty() {
        body.raw(
            "<p class=\"muted\">No subjects. Producers register their schemas through the schema registry \
                  (rill broker --schema-registry-listen, docs/schema-registry.md), or register one below.</p>",
        );
    }
    pager(&mut body, "/schemas", search, number, page_count);
    if !page.is_read_only {
        super::schema_changes::registry_compatibility_form(page, &mut body, &registry);
        super::schema_changes::registry_mode_form(page, &mut body, &registry);
        super::schema_changes::register_form(page, &mut body, None);
    }
    page.render(200, "Schemas", body)
}

pub fn show(console: &Console, page: Page<'_>, subject: &str, query: &Form) -> Response {
    let registry = console.node.schemas.snapshot();
    let version = match query.get("version").map(VersionRef::parse).transpose() {
        Ok(version) => version.unwrap_or(VersionRef::Latest),
        Err(err) => return page.error(400, "Bad version", &err.to_string()),
    };
    let shown = match registry.version(subject, version, false) {
        Ok(shown) => shown,
        Err(err) => return page.error(404, "Subject not found", &err.to_string()),
    };
    let versions = registry.versions(subject, false).unwrap_or_default();
    let mut body = Html::new();
    body.raw("<div class=\"stats\"><div class=\"stat\"><b>").text(shown.version).raw("</b>version</div>");
    body.raw("<div class=\"stat\"><b>").text(shown.id).raw("</b>schema id</div>");
    body.raw("<div class=\"stat\"><b>").text(versions.len()).raw("</b>versions</div>");
    body.raw("<div class=\"stat\"><b>").text(shown.schema_type.name()).raw("</b>type</div>");
    body.raw("<div class=\"stat\"><b>").text(registry.effective_compatibility(subject).name());
    body.raw("</b>compatibility</div></div>");
    if !shown.references.is_empty() {
        body.raw("<p id=\"references\">References: ");
        for (index, reference) in shown.references.iter().enumerate() {
            if index > 0 {
                body.raw(", ");
            }
            let href = format!("/schemas/{}?version={}", url_encode(&reference.subject), reference.version);
            body.text(&reference.name).raw(" (").link(&href, format!("{} v{}", reference.subject, reference.version));
            body.raw(")");
        }
        body.raw("</p>");
    }
    body.raw(
        "<table id=\"versions\"><tr><th class=\"num\">version</th><th class=\"num\">id</th><th>also under</th></tr>",
    );
    for number in versions.iter().rev() {
        let Ok(found) = registry.version(subject, VersionRef::Number(*number), false) else { continue };
        let others: Vec<String> = registry
            .usages(found.id, false)
            .unwrap_or_default()
            .into_iter()
            .filter(|(other, _)| other != subject)
            .map(|(other, version)| format!("{other} v{version}"))
            .collect();
        let href = format!("/schemas/{}?version={number}", url_encode(subject));
        body.raw("<tr><td class=\"num\">").link(&href, number).raw("</td><td class=\"num\">").text(found.id);
        body.raw("</td>").cell(others.join(", ")).raw("</tr>");
    }
    body.raw("</table><h2>Schema</h2><pre id=\"schema\">");
    let pretty = serde_json::from_str::<serde_json::Value>(&shown.text)
        .ok()
        .and_then(|json| serde_json::to_string_pretty(&json).ok())
        .or_else(|| registry.protobuf_text(shown.id))
        .unwrap_or(shown.text);
    body.text(pretty).raw("</pre>");
    if !page.is_read_only {
        super::schema_changes::subject_forms(page, &mut body, &registry, subject, shown.version);
        super::schema_changes::register_form(page, &mut body, Some(subject));
    }
    body.raw("<p>").link("/schemas", "All subjects").raw("</p>");
    page.render(200, subject, body)
}
