//! Changes to the schema registry from the console, as Redpanda Console and AKHQ make them: a schema registered
//! under a subject (Avro, Protobuf or JSON Schema, with references), a subject's compatibility level set or given
//! back to the registry's, a version or a whole subject deleted (soft, then permanently), and the registry's own
//! level and mode.
//!
//! Each goes through the registry's own store (`SchemaStore::change`, which the Confluent API on
//! `schema_registry_listen` calls too; on a cluster through the replicated metadata), so a refusal is the
//! registry's own, with Confluent's HTTP status. Each is first applied to a copy of this node's registry, with
//! nothing written, so the confirmation can say what will happen (the version and id a schema would get, the
//! compatibility check passed) or the page can say why not before anything is asked twice.

use super::html::{url_encode, Form, Html};
use super::layout::{hidden, Page};
use super::Console;
use crate::metrics::admin_http::Response;
use crate::schema_registry::registry::{
    check_subject, Compatibility, Mode, SchemaChange, SchemaError, SchemaRegistry, VersionRef,
};
use crate::schema_registry::schema::{SchemaDefinition, SchemaReference, SchemaType};
use crate::schema_registry::store::StoreError;

const LEVELS: [Compatibility; 7] = [
    Compatibility::None,
    Compatibility::Backward,
    Compatibility::BackwardTransitive,
    Compatibility::Forward,
    Compatibility::ForwardTransitive,
    Compatibility::Full,
    Compatibility::FullTransitive,
];

fn subject_path(subject: &str) -> String {
    format!("/schemas/{}", url_encode(subject))
}

/// The form that registers a schema, on the subjects list (no subject given) or a subject's page.
pub fn register_form(page: Page<'_>, body: &mut Html, subject: Option<&str>) {
    body.raw(if subject.is_some() { "<h2>Register a new version</h2>" } else { "<h2>Register a schema</h2>" });
    page.form_open(body, "/schemas/register");
    body.raw("<fieldset class=\"stack\">");
    match subject {
        Some(subject) => {
            hidden(body, "subject", subject);
        }
        None => {
            body.raw("<label>Subject (for a topic's values: <code>TOPIC-value</code>) <input name=\"subject\">");
            body.raw("</label>");
        }
    }
    body.raw("<label>Type <select name=\"type\">");
    for kind in SchemaType::ALL {
        body.raw("<option>").text(kind.name()).raw("</option>");
    }
    body.raw("</select></label><label>Schema <textarea name=\"schema\" rows=\"12\" cols=\"80\"></textarea></label>");
    body.raw("<label>References, one <code>name subject version</code> a line (optional) ");
    body.raw("<textarea name=\"references\" rows=\"2\" cols=\"80\"></textarea></label>");
    body.raw("<button id=\"register\">Check…</button></fieldset></form>");
}

/// A subject's forms: its compatibility level, and deletes.
pub fn subject_forms(page: Page<'_>, body: &mut Html, registry: &SchemaRegistry, subject: &str, shown_version: u32) {
    let own = registry.subjects.get(subject).and_then(|s| s.compatibility);
    body.raw("<h2>Compatibility</h2>");
    page.form_open(body, &format!("{}/compatibility", subject_path(subject)));
    body.raw("<fieldset class=\"stack\"><label>Level <select name=\"level\">");
    body.raw("<option value=\"default\">the registry's (").text(registry.compatibility.name()).raw(")</option>");
    for level in LEVELS {
        let selected = if own == Some(level) { " selected" } else { "" };
        body.raw("<option").raw(selected).raw(">").text(level.name()).raw("</option>");
    }
    body.raw("</select></label><button id=\"set-compatibility\">Set…</button></fieldset></form>");
    body.raw("<h2>Delete</h2>");
    page.form_open(body, &format!("{}/delete", subject_path(subject)));
    body.raw("<fieldset class=\"stack\"><label>Version (empty: the whole subject) <input name=\"version\" ");
    body.raw("inputmode=\"numeric\" value=\"").text(shown_version).raw("\"></label>");
    body.raw("<label><input type=\"checkbox\" name=\"permanent\" value=\"yes\"> permanently (only what was ");
    body.raw("deleted already: its ids are then gone for readers too)</label>");
    body.raw("<button id=\"delete\" class=\"danger\">Delete…</button></fieldset></form>");
}

/// `name subject version` lines as references.
fn references_of(text: &str) -> Result<Vec<SchemaReference>, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let version = words.get(2).and_then(|v| v.parse::<u32>().ok()).filter(|v| *v >= 1);
            match (words.as_slice(), version) {
                ([name, subject, _], Some(version)) => {
                    Ok(SchemaReference { name: (*name).to_owned(), subject: (*subject).to_owned(), version })
                }
                _ => Err(format!(
                    "reference {line:?} is not \"name subject version\" (for example \"other.proto other-value 1\")"
                )),
            }
        })
        .collect()
}

/// What a refused change is shown as: the registry's reason with its HTTP status.
fn refused_page(page: Page<'_>, what: &str, err: &SchemaError) -> Response {
    page.error(err.http_status(), what, &err.to_string())
}

fn store_refused_page(page: Page<'_>, what: &str, err: StoreError) -> Response {
    match err {
        StoreError::Refused(err) => refused_page(page, what, &err),
        other => page.error(503, what, &other.to_string()),
    }
}

pub async fn register(console: &Console, page: Page<'_>, form: &Form) -> Response {
    let subject = form.get("subject").unwrap_or("").trim().to_owned();
    if let Err(err) = check_subject(&subject) {
        return refused_page(page, "Bad subject", &err);
    }
    let type_name = form.get("type").unwrap_or("AVRO");
    let Some(schema_type) = SchemaType::parse(type_name) else {
        let message = format!("type {type_name:?} is not one the registry holds: {}", SchemaType::NAMES);
        return page.error(400, "Bad type", &message);
    };
    let Some(schema) = form.get("schema").filter(|s| !s.trim().is_empty()) else {
        return page.error(400, "No schema", "the schema is empty: paste the schema's text");
    };
    let references = match references_of(form.get("references").unwrap_or("")) {
        Ok(references) => references,
        Err(message) => return page.error(400, "Bad references", &message),
    };
    let change = SchemaChange::Register {
        subject: subject.clone(),
        schema: schema.to_owned(),
        schema_type,
        references: references.clone(),
        id: None,
        version: None,
    };
    let definition = SchemaDefinition::new(schema.to_owned(), schema_type, references.clone());
    let current = console.node.schemas.snapshot();
    let mut after = SchemaRegistry::clone(&current);
    let is_new = match change.apply(&mut after) {
        Ok(is_new) => is_new,
        Err(err) => return refused_page(page, "Schema refused", &err),
    };
    let Ok(found) = after.lookup(&subject, &definition, false) else {
        return page.error(500, "Schema not found", "the registry took the schema but cannot find it again");
    };
    if !is_new {
        let mut body = Html::new();
        body.raw("<p id=\"registered-already\">").text(&subject).raw(" has this schema already, as version ");
        body.text(found.version).raw(" (id ").text(found.id).raw("): nothing to register.</p><p>");
        body.link(&subject_path(&subject), &subject).raw("</p>");
        return page.render(200, "Registered already", body);
    }
    if form.get("confirm") != Some("yes") {
        let level = current.effective_compatibility(&subject);
        let id_note = if current.schema(found.id).is_ok() { "an id other subjects use already" } else { "a new id" };
        let mut body = Html::new();
        body.raw("<p id=\"plan\">Register this ").text(schema_type.name()).raw(" schema as version ");
        body.text(found.version).raw(" of <b>").text(&subject).raw("</b>, id ").text(found.id);
        body.raw(" (").text(id_note).raw(")?</p><p id=\"compatible\">");
        match (current.versions(&subject, false), level) {
            (Ok(_), Compatibility::None) => body.text("The subject's compatibility is NONE: nothing is checked."),
            (Ok(_), level) => body.text(format!("Compatible with the subject's versions under {}.", level.name())),
            (Err(_), _) => body.text("The subject's first version: nothing to be compatible with."),
        };
        body.raw("</p>");
        page.form_open(&mut body, "/schemas/register");
        hidden(&mut body, "subject", &subject);
        hidden(&mut body, "type", schema_type.name());
        hidden(&mut body, "schema", schema);
        hidden(&mut body, "references", form.get("references").unwrap_or(""));
        hidden(&mut body, "confirm", "yes");
        body.raw("<button id=\"confirm\">Yes, register it</button> ").link("/schemas", "Cancel").raw("</form>");
        return page.render(200, "Register the schema?", body);
    }
    match console.node.schemas.change(change).await {
        Ok(registry) => match registry.lookup(&subject, &definition, false) {
            Ok(found) => {
                tracing::info!(%subject, version = found.version, id = found.id, "schema registered from the console");
                let mut body = Html::new();
                body.raw("<p class=\"ok\" id=\"registered\">Registered ").text(&subject).raw(" version ");
                body.text(found.version).raw(", id ").text(found.id).raw(".</p><p>");
                let href = format!("{}?version={}", subject_path(&subject), found.version);
                body.link(&href, &subject).raw("</p>");
                page.render(200, "Schema registered", body)
            }
            Err(err) => refused_page(page, "Schema not found", &err),
        },
        Err(err) => store_refused_page(page, "Schema not registered", err),
    }
}

/// The form that sets the registry's own level, which every subject without one of its own follows.
pub fn registry_compatibility_form(page: Page<'_>, body: &mut Html, registry: &SchemaRegistry) {
    page.form_open(body, "/schemas/compatibility");
    body.raw("<fieldset class=\"stack\"><label>The registry's compatibility (subjects without their own) ");
    body.raw("<select name=\"level\">");
    for level in LEVELS {
        let selected = if registry.compatibility == level { " selected" } else { "" };
        body.raw("<option").raw(selected).raw(">").text(level.name()).raw("</option>");
    }
    body.raw("</select></label><button id=\"set-registry-compatibility\">Set…</button></fieldset></form>");
}

/// The form that sets the registry's mode (Confluent's `PUT /mode`).
pub fn registry_mode_form(page: Page<'_>, body: &mut Html, registry: &SchemaRegistry) {
    page.form_open(body, "/schemas/mode");
    body.raw("<fieldset class=\"stack\"><label>The registry's mode <select name=\"mode\">");
    for mode in [Mode::Readwrite, Mode::Readonly, Mode::Import] {
        let selected = if registry.mode == mode { " selected" } else { "" };
        body.raw("<option").raw(selected).raw(">").text(mode.name()).raw("</option>");
    }
    body.raw("</select></label><button id=\"set-mode\">Set…</button></fieldset></form>");
}

/// Sets the registry's mode: READONLY refuses every change until set back, IMPORT (an empty registry only, as
/// Confluent's) takes registrations that keep another registry's ids.
pub async fn mode(console: &Console, page: Page<'_>, form: &Form) -> Response {
    let asked = form.get("mode").unwrap_or("");
    let Some(mode) = Mode::parse(asked) else {
        return page.error(422, "Bad mode", &format!("mode {asked:?} is not one of {}", Mode::NAMES));
    };
    let change = SchemaChange::SetMode { subject: None, mode, force: false };
    let current = console.node.schemas.snapshot();
    if let Err(err) = change.apply(&mut SchemaRegistry::clone(&current)) {
        return refused_page(page, "Mode not changed", &err);
    }
    if form.get("confirm") != Some("yes") {
        let what = match mode {
            Mode::Readwrite => "Registrations, deletes and levels are taken again.",
            Mode::Readonly => "Every registration, delete and level change is refused until the mode is set back.",
            Mode::Import => "Registrations must name the id and version they keep (another registry's), unchecked.",
        };
        let mut body = Html::new();
        body.raw("<p id=\"plan\">The registry's mode: ").text(current.mode.name()).raw(" → ").text(mode.name());
        body.raw("? ").text(what).raw("</p>");
        page.form_open(&mut body, "/schemas/mode");
        hidden(&mut body, "mode", mode.name());
        hidden(&mut body, "confirm", "yes");
        body.raw("<button id=\"confirm\">Yes, set it</button> ").link("/schemas", "Cancel").raw("</form>");
        return page.render(200, "Set the mode?", body);
    }
    match console.node.schemas.change(change).await {
        Ok(registry) => {
            tracing::info!(mode = registry.mode.name(), "schema registry mode set from the console");
            let mut body = Html::new();
            body.raw("<p class=\"ok\" id=\"mode\">The registry's mode: ").text(registry.mode.name());
            body.raw(".</p><p>").link("/schemas", "All subjects").raw("</p>");
            page.render(200, "Mode set", body)
        }
        Err(err) => store_refused_page(page, "Mode not changed", err),
    }
}

/// Sets `subject`'s compatibility level (`default`: back to the registry's), or the registry's own (`None`).
pub async fn compatibility(console: &Console, page: Page<'_>, subject: Option<&str>, form: &Form) -> Response {
    let asked = form.get("level").unwrap_or("");
    let change = match (subject, asked) {
        (Some(subject), "default") => SchemaChange::ClearCompatibility { subject: subject.to_owned() },
        (subject, asked) => match Compatibility::parse(asked) {
            Some(level) => SchemaChange::SetCompatibility { subject: subject.map(str::to_owned), level },
            None => return refused_page(page, "Bad level", &SchemaError::InvalidCompatibility(asked.to_owned())),
        },
    };
    let current = console.node.schemas.snapshot();
    if let Some(Err(err)) = subject.map(|subject| current.versions(subject, false)) {
        return refused_page(page, "Subject not found", &err);
    }
    let mut after = SchemaRegistry::clone(&current);
    if let Err(err) = change.apply(&mut after) {
        return refused_page(page, "Compatibility not changed", &err);
    }
    let level_of = |registry: &SchemaRegistry| match subject {
        Some(subject) => registry.effective_compatibility(subject),
        None => registry.compatibility,
    };
    let (whose, back, action) = match subject {
        Some(subject) => (
            format!("Compatibility of {subject}"),
            subject_path(subject),
            format!("{}/compatibility", subject_path(subject)),
        ),
        None => ("The registry's compatibility".to_owned(), "/schemas".to_owned(), "/schemas/compatibility".to_owned()),
    };
    if form.get("confirm") != Some("yes") {
        let mut body = Html::new();
        body.raw("<p id=\"plan\">").text(&whose).raw(": ").text(level_of(&current).name()).raw(" → ");
        body.text(level_of(&after).name()).raw("? Versions registered from now on are checked under it");
        if subject.is_none() {
            body.raw(" in every subject without a level of its own");
        }
        body.raw("; those held stay.</p>");
        page.form_open(&mut body, &action);
        hidden(&mut body, "level", asked);
        hidden(&mut body, "confirm", "yes");
        body.raw("<button id=\"confirm\">Yes, set it</button> ").link(&back, "Cancel").raw("</form>");
        return page.render(200, "Set the compatibility?", body);
    }
    match console.node.schemas.change(change).await {
        Ok(registry) => {
            let level = level_of(&registry);
            tracing::info!(
                subject = subject.unwrap_or("(registry)"),
                level = level.name(),
                "schema compatibility set from the console"
            );
            let mut body = Html::new();
            body.raw("<p class=\"ok\" id=\"compatibility\">").text(&whose).raw(": ").text(level.name());
            body.raw(".</p><p>").link(&back, "Back").raw("</p>");
            page.render(200, "Compatibility set", body)
        }
        Err(err) => store_refused_page(page, "Compatibility not changed", err),
    }
}

pub async fn delete(console: &Console, page: Page<'_>, subject: &str, form: &Form) -> Response {
    let permanent = form.get("permanent") == Some("yes");
    let version = match form.get("version").map(|v| VersionRef::parse(v.trim())).transpose() {
        Ok(version) => version,
        Err(err) => return refused_page(page, "Bad version", &err),
    };
    let current = console.node.schemas.snapshot();
    // A permanent delete is of what was soft-deleted, which only the deleted listing holds.
    let number = match version.map(|v| current.version(subject, v, permanent)) {
        None => None,
        Some(Ok(found)) => Some(found.version),
        Some(Err(err)) => return refused_page(page, "Version not found", &err),
    };
    let change = match number {
        Some(version) => SchemaChange::DeleteVersion { subject: subject.to_owned(), version, permanent },
        None => SchemaChange::DeleteSubject { subject: subject.to_owned(), permanent },
    };
    let mut after = SchemaRegistry::clone(&current);
    if let Err(err) = change.apply(&mut after) {
        return refused_page(page, "Not deleted", &err);
    }
    let what = match number {
        Some(version) => format!("version {version} of {subject}"),
        None => format!("subject {subject} (every version)"),
    };
    if form.get("confirm") != Some("yes") {
        let mut body = Html::new();
        body.raw("<p id=\"plan\">Delete ").text(&what);
        if permanent {
            body.raw(" permanently? It is gone for good; a schema id no other version holds is gone for readers ");
            body.raw("too.</p>");
        } else {
            body.raw("? It is no longer listed or used for new records; readers still find its schema by id, and ");
            body.raw("a permanent delete afterwards removes it for good.</p>");
        }
        page.form_open(&mut body, &format!("{}/delete", subject_path(subject)));
        if let Some(version) = number {
            hidden(&mut body, "version", &version.to_string());
        }
        if permanent {
            hidden(&mut body, "permanent", "yes");
        }
        hidden(&mut body, "confirm", "yes");
        body.raw("<button id=\"confirm\" class=\"danger\">Yes, delete it</button> ");
        body.link(&subject_path(subject), "Cancel").raw("</form>");
        return page.render(200, "Delete?", body);
    }
    match console.node.schemas.change(change).await {
        Ok(_) => {
            tracing::info!(%subject, ?number, permanent, "schema deleted from the console");
            let mut body = Html::new();
            body.raw("<p class=\"ok\" id=\"deleted\">Deleted ").text(&what);
            body.raw(if permanent { " permanently." } else { "." }).raw("</p>");
            if !permanent {
                // Soft-deleted, it is on no page any more: the way to its permanent delete is here.
                page.form_open(&mut body, &format!("{}/delete", subject_path(subject)));
                if let Some(version) = number {
                    hidden(&mut body, "version", &version.to_string());
                }
                hidden(&mut body, "permanent", "yes");
                body.raw("<button id=\"purge\" class=\"danger\">Delete it permanently…</button></form>");
            }
            body.raw("<p>").link("/schemas", "All subjects").raw("</p>");
            page.render(200, "Deleted", body)
        }
        Err(err) => store_refused_page(page, "Not deleted", err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_read_one_a_line_and_a_bad_line_is_named() {
        let read = references_of("other.proto other-value 1\n\n  money.proto money 3  \n").expect("two");
        assert_eq!(
            read.iter().map(|r| (r.name.as_str(), r.subject.as_str(), r.version)).collect::<Vec<_>>(),
            [("other.proto", "other-value", 1), ("money.proto", "money", 3)]
        );
        for bad in ["other.proto other-value", "a b 0", "a b c", "a b 1 2"] {
            let refused = references_of(bad).expect_err(bad);
            assert!(refused.contains(bad) && refused.contains("name subject version"), "{refused}");
        }
        assert!(references_of("").expect("none").is_empty());
    }
}
