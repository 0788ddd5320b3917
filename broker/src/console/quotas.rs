//! Client quotas (docs/kafka.md, "Client quotas"; `rill quota`): every entity holding one with its values, and a
//! form that sets or removes values of one entity (a user, a client id, both, or an IP address; each a name or
//! the default) after a confirmation, through the `QuotaAdmin` service's own handlers, so an entity or a value is
//! refused as `rill quota set` and Kafka's AlterClientQuotas refuse it, and on a cluster the change goes through
//! the replicated metadata.

use rill_protocol::v1::{self, quota_admin_server::QuotaAdmin};

use super::html::{Form, Html};
use super::layout::{count, hidden, Page};
use super::{status_response, Console};
use crate::metrics::admin_http::Response;

/// Each value an entity may hold: its key (Kafka's name) and what it counts.
const KEYS: [(&str, &str); 5] = [
    ("producer_byte_rate", "produce bytes/s"),
    ("consumer_byte_rate", "fetch bytes/s"),
    ("request_percentage", "% of a thread"),
    ("controller_mutation_rate", "partition mutations/s"),
    ("connection_creation_rate", "connections/s (an IP)"),
];

/// The parts of an entity the form names: user, client id, ip.
const PARTS: [(&str, &str); 3] = [("user", "user"), ("client_id", "client id"), ("ip", "IP address")];

fn value_of(quota: &v1::ClientQuota, key: &str) -> Option<u64> {
    match key {
        "producer_byte_rate" => quota.producer_byte_rate,
        "consumer_byte_rate" => quota.consumer_byte_rate,
        "request_percentage" => quota.request_percentage,
        "controller_mutation_rate" => quota.controller_mutation_rate,
        _ => quota.connection_creation_rate,
    }
}

/// "user alice, client id app" / "the default user" / "IP 10.0.0.7", as the pages word an entity.
fn entity_text(entity: &v1::QuotaEntity) -> String {
    let mut parts = Vec::new();
    for (name, is_default, what) in [
        (&entity.user, entity.default_user, "user"),
        (&entity.client_id, entity.default_client_id, "client id"),
        (&entity.ip, entity.default_ip, "IP"),
    ] {
        match (name, is_default) {
            (Some(name), _) => parts.push(format!("{what} {name}")),
            (None, true) => parts.push(format!("the default {what}")),
            (None, false) => {}
        }
    }
    if parts.is_empty() {
        "no entity".to_string()
    } else {
        parts.join(", ")
    }
}

pub async fn list(console: &Console, page: Page<'_>) -> Response {
    let quotas = match console.quotas.list_quotas(page.request(v1::ListQuotasRequest {})).await {
        Ok(answer) => answer.into_inner().quotas,
        Err(status) => return status_response(page, "Quotas not listed", &status),
    };
    let mut body = Html::new();
    body.raw("<p id=\"quota-count\">").text(format!("{} entities with a quota.", count(quotas.len() as u64)));
    body.raw("</p><table id=\"quotas\"><tr><th>entity</th>");
    for (_, what) in KEYS {
        body.raw("<th class=\"num\">").raw(what).raw("</th>");
    }
    body.raw("</tr>");
    for quota in &quotas {
        body.raw("<tr>").cell(entity_text(&quota.entity.clone().unwrap_or_default()));
        for (key, _) in KEYS {
            body.raw("<td class=\"num\">").text(value_of(quota, key).map_or(String::new(), |v| v.to_string()));
            body.raw("</td>");
        }
        body.raw("</tr>");
    }
    body.raw("</table>");
    if !page.is_read_only {
        body.raw("<h2>Set or remove a quota</h2>");
        page.form_open(&mut body, "/quotas");
        body.raw("<fieldset class=\"stack\">");
        for (part, what) in PARTS {
            body.raw("<label>").raw(what).raw(" <input name=\"").raw(part).raw("\"></label><label><input ");
            body.raw("type=\"checkbox\" name=\"default_").raw(part).raw("\" value=\"yes\"> or the default ");
            body.raw(what).raw(" (every one without a quota of its own)</label>");
        }
        for (key, what) in KEYS {
            body.raw("<label><code>").raw(key).raw("</code> (").raw(what).raw(") <input name=\"").raw(key);
            body.raw("\" inputmode=\"numeric\"></label><label><input type=\"checkbox\" name=\"remove_").raw(key);
            body.raw("\" value=\"yes\"> remove it</label>");
        }
        body.raw("<button id=\"review\">Review…</button></fieldset></form>");
        body.raw("<p class=\"muted\">Empty fields change nothing. A client past a rate is slowed down, not refused; ");
        body.raw("see docs/kafka.md, \"Client quotas\".</p>");
    }
    page.render(200, "Quotas", body)
}

/// The entity and changes a form asks for, or what is wrong with it.
fn request_of(form: &Form) -> Result<v1::AlterQuotasRequest, String> {
    let part = |name: &str| form.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let is_default = |name: &str| form.get(&format!("default_{name}")) == Some("yes");
    let entity = v1::QuotaEntity {
        user: part("user"),
        default_user: is_default("user"),
        client_id: part("client_id"),
        default_client_id: is_default("client_id"),
        ip: part("ip"),
        default_ip: is_default("ip"),
    };
    let mut request = v1::AlterQuotasRequest { entity: Some(entity), ..Default::default() };
    let mut asked = 0;
    for (key, what) in KEYS {
        let value = form.number::<u64>(key, &format!("a whole number of {what}"))?;
        let remove = form.get(&format!("remove_{key}")) == Some("yes");
        if value.is_some() && remove {
            return Err(format!("{key} is given a value and removed: do one or the other"));
        }
        asked += usize::from(value.is_some() || remove);
        match key {
            "producer_byte_rate" => (request.producer_byte_rate, request.remove_producer_byte_rate) = (value, remove),
            "consumer_byte_rate" => (request.consumer_byte_rate, request.remove_consumer_byte_rate) = (value, remove),
            "request_percentage" => (request.request_percentage, request.remove_request_percentage) = (value, remove),
            "controller_mutation_rate" => {
                (request.controller_mutation_rate, request.remove_controller_mutation_rate) = (value, remove)
            }
            _ => (request.connection_creation_rate, request.remove_connection_creation_rate) = (value, remove),
        }
    }
    if asked == 0 {
        return Err("nothing to change: give a value, or tick one to remove".into());
    }
    Ok(request)
}

/// What `request` changes, a line each: `producer_byte_rate: 1048576`, `consumer_byte_rate: removed`.
fn changes_text(request: &v1::AlterQuotasRequest) -> Vec<String> {
    let pairs = [
        ("producer_byte_rate", request.producer_byte_rate, request.remove_producer_byte_rate),
        ("consumer_byte_rate", request.consumer_byte_rate, request.remove_consumer_byte_rate),
        ("request_percentage", request.request_percentage, request.remove_request_percentage),
        ("controller_mutation_rate", request.controller_mutation_rate, request.remove_controller_mutation_rate),
        ("connection_creation_rate", request.connection_creation_rate, request.remove_connection_creation_rate),
    ];
    pairs
        .into_iter()
        .filter_map(|(key, value, remove)| match (value, remove) {
            (Some(value), _) => Some(format!("{key}: {value}")),
            (None, true) => Some(format!("{key}: removed")),
            (None, false) => None,
        })
        .collect()
}

pub async fn change(console: &Console, page: Page<'_>, form: &Form) -> Response {
    let request = match request_of(form) {
        Ok(request) => request,
        Err(message) => return page.error(400, "Quota not changed", &message),
    };
    let entity = entity_text(&request.entity.clone().unwrap_or_default());
    let changes = changes_text(&request);
    if form.get("confirm") != Some("yes") {
        let mut body = Html::new();
        body.raw("<p>Change the quotas of <b>").text(&entity).raw("</b>?</p><ul id=\"changes\">");
        for change in &changes {
            body.raw("<li><code>").text(change).raw("</code></li>");
        }
        body.raw("</ul>");
        page.form_open(&mut body, "/quotas");
        for (name, _) in PARTS {
            hidden(&mut body, name, form.get(name).unwrap_or(""));
            hidden(&mut body, &format!("default_{name}"), form.get(&format!("default_{name}")).unwrap_or(""));
        }
        for (key, _) in KEYS {
            hidden(&mut body, key, form.get(key).unwrap_or(""));
            hidden(&mut body, &format!("remove_{key}"), form.get(&format!("remove_{key}")).unwrap_or(""));
        }
        hidden(&mut body, "confirm", "yes");
        body.raw("<button id=\"confirm\">Yes, change them</button> ").link("/quotas", "Cancel").raw("</form>");
        return page.render(200, "Change quotas?", body);
    }
    match console.quotas.alter_quotas(page.request(request)).await {
        Ok(answer) => {
            tracing::info!(%entity, changes = %changes.join(", "), "quotas changed from the console");
            let quota = answer.into_inner().quota.unwrap_or_default();
            let held: Vec<String> = KEYS
                .iter()
                .filter_map(|(key, _)| value_of(&quota, key).map(|value| format!("{key}={value}")))
                .collect();
            let mut body = Html::new();
            body.raw("<p class=\"ok\" id=\"held\">").text(&entity).raw(if held.is_empty() {
                " holds no quota now."
            } else {
                " holds now: "
            });
            body.text(held.join(", ")).raw("</p><p>").link("/quotas", "Quotas").raw("</p>");
            page.render(200, "Quotas changed", body)
        }
        Err(status) => status_response(page, "Quota not changed", &status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_names_an_entity_and_its_changes() {
        let form = Form::parse(
            "user=alice&client_id=+&default_client_id=yes&producer_byte_rate=1048576&remove_consumer_byte_rate=yes",
        );
        let request = request_of(&form).expect("valid");
        let entity = request.entity.clone().expect("an entity");
        assert_eq!(
            (entity.user.as_deref(), entity.client_id.as_deref(), entity.default_client_id),
            (Some("alice"), None, true)
        );
        assert_eq!(entity_text(&entity), "user alice, the default client id");
        assert_eq!(changes_text(&request), ["producer_byte_rate: 1048576", "consumer_byte_rate: removed"]);
    }

    #[test]
    fn a_form_asking_nothing_both_or_no_number_is_refused_saying_why() {
        let nothing = request_of(&Form::parse("user=alice")).expect_err("nothing");
        assert!(nothing.starts_with("nothing to change"), "{nothing}");
        let both =
            request_of(&Form::parse("user=a&producer_byte_rate=1&remove_producer_byte_rate=yes")).expect_err("both");
        assert!(both.contains("producer_byte_rate is given a value and removed"), "{both}");
        let words = request_of(&Form::parse("user=a&request_percentage=half")).expect_err("not a number");
        assert!(words.contains("request_percentage \"half\" is not a whole number of % of a thread"), "{words}");
    }
}
