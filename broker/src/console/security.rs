//! Users and ACLs (docs/security.md): the users Kafka clients sign in as and the console's users, created with a
//! password typed twice and deleted after a confirmation; the ACL bindings, listed with a search, added and
//! removed one at a time after a confirmation. Each through the `UserAdmin` and `AclAdmin` services' own handlers,
//! so a name, a password or a binding is refused as `rill user` and `rill acl` are refused, and on a cluster the
//! change goes through the replicated metadata.
//!
//! Invariant: a password reaches the page only in the create form's POST; it is never written into a page (the
//! create has no confirmation step, which would have to carry it), logged or kept beyond the call.

use rill_protocol::v1::{self, acl_admin_server::AclAdmin, user_admin_server::UserAdmin};

use super::html::{Form, Html};
use super::layout::{count, hidden, Page};
use super::topics::pager;
use super::{status_response, Console};
use crate::auth::acl::{Operation, PatternType, Permission, ResourceType};
use crate::metrics::admin_http::Response;

/// Users or bindings a page of the lists shows.
const ROWS_PER_PAGE: usize = 100;

/// The rows of page `query["page"]` of `items`, with the page number and count, or the 400 page.
fn paged<'a, T>(page: Page<'_>, query: &Form, items: &'a [T]) -> Result<(&'a [T], usize, usize), Response> {
    let page_count = items.len().div_ceil(ROWS_PER_PAGE).max(1);
    let number = match query.number::<usize>("page", "a page number (1 or more)") {
        Ok(number) => number.unwrap_or(1).clamp(1, page_count),
        Err(message) => return Err(page.error(400, "Bad page number", &message)),
    };
    Ok((&items[(number - 1) * ROWS_PER_PAGE..items.len().min(number * ROWS_PER_PAGE)], number, page_count))
}

pub async fn users(console: &Console, page: Page<'_>, query: &Form) -> Response {
    let users = match console.users.list_users(page.request(v1::ListUsersRequest {})).await {
        Ok(answer) => answer.into_inner().users,
        Err(status) => return status_response(page, "Users not listed", &status),
    };
    let (shown, number, page_count) = match paged(page, query, &users) {
        Ok(paged) => paged,
        Err(refusal) => return refusal,
    };
    let mut body = Html::new();
    body.raw("<p id=\"user-count\">").text(format!("{} users.", count(users.len() as u64))).raw("</p>");
    body.raw("<table id=\"users\"><tr><th>user</th><th>SCRAM mechanisms</th><th class=\"num\">tokens</th>");
    if !page.is_read_only {
        body.raw("<th></th>");
    }
    body.raw("</tr>");
    for user in shown {
        body.raw("<tr>").cell(format!("User:{}", user.name)).cell(user.mechanisms.join(", "));
        body.raw("<td class=\"num\">").text(user.token_count).raw("</td>");
        if !page.is_read_only {
            let encoded = super::html::url_encode(&user.name);
            body.raw("<td>");
            page.form_open(&mut body, &format!("/users/{encoded}/token"));
            body.raw("<button>Issue a token…</button></form> ").link(&format!("/users/{encoded}/delete"), "Delete…");
            body.raw("</td>");
        }
        body.raw("</tr>");
    }
    body.raw("</table>");
    pager(&mut body, "/users", "", number, page_count);
    if !page.is_read_only {
        body.raw("<h2>Create a user</h2>");
        page.form_open(&mut body, "/users");
        body.raw("<fieldset class=\"stack\"><label>Name <input name=\"name\" required maxlength=\"64\" ");
        body.raw("autocomplete=\"off\"></label><label>Password <input name=\"password\" type=\"password\" required ");
        body.raw("autocomplete=\"new-password\"></label><label>Password again <input name=\"again\" ");
        body.raw("type=\"password\" required autocomplete=\"new-password\"></label>");
        body.raw("<button id=\"create-user\">Create</button></fieldset></form>");
        body.raw("<p class=\"muted\">A name is 1 to 64 letters, digits, <code>.</code>, <code>_</code>, ");
        body.raw("<code>-</code> and <code>@</code>. The password is kept only as SCRAM-SHA-256 and SCRAM-SHA-512 ");
        body.raw("credentials; the user signs in here and over SASL as <code>User:NAME</code>.</p>");
    }
    page.render(200, "Users", body)
}

pub async fn create_user(console: &Console, page: Page<'_>, form: &Form) -> Response {
    let name = form.get("name").unwrap_or("").trim().to_string();
    // Not trimmed: a password is whatever was typed.
    let password = form.fields().find(|(field, _)| *field == "password").map_or("", |(_, value)| value);
    let again = form.fields().find(|(field, _)| *field == "again").map_or("", |(_, value)| value);
    if password != again {
        return page.error(400, "User not created", "The two passwords differ: type the same password twice.");
    }
    let request = v1::CreateUserRequest {
        name: name.clone(),
        password: password.to_owned(),
        mechanisms: Vec::new(),
        with_token: false,
    };
    match console.users.create_user(page.request(request)).await {
        Ok(_) => {
            tracing::info!(user = %name, "user created from the console");
            let mut body = Html::new();
            body.raw("<p class=\"ok\">User <b>").text(format!("User:{name}")).raw("</b> created, with ");
            body.raw("SCRAM-SHA-256 and SCRAM-SHA-512 credentials.</p><p>").link("/acls", "Give it ACLs");
            body.raw(" · ").link("/users", "Users").raw("</p>");
            page.render(200, "User created", body)
        }
        Err(status) => status_response(page, "User not created", &status),
    }
}

pub fn delete_user_confirm(page: Page<'_>, name: &str) -> Response {
    if page.is_read_only {
        return page.error(403, "Read-only console", "Users cannot be deleted from a read-only console.");
    }
    let mut body = Html::new();
    body.raw("<p>Delete user <b>").text(format!("User:{name}")).raw("</b>? Its credentials and tokens go and its ");
    body.raw("console sessions end; its ACLs stay until removed.</p>");
    page.form_open(&mut body, &format!("/users/{}/delete", super::html::url_encode(name)));
    hidden(&mut body, "confirm", "yes");
    body.raw("<button id=\"confirm\" class=\"danger\">Yes, delete it</button> ");
    body.link("/users", "Cancel").raw("</form>");
    page.render(200, "Delete user?", body)
}

pub async fn delete_user(console: &Console, page: Page<'_>, name: &str, form: &Form) -> Response {
    if form.get("confirm") != Some("yes") {
        return delete_user_confirm(page, name);
    }
    match console.users.delete_user(page.request(v1::DeleteUserRequest { name: name.to_string() })).await {
        Ok(_) => {
            tracing::info!(user = %name, "user deleted from the console");
            let mut body = Html::new();
            body.raw("<p class=\"ok\">User <b>").text(format!("User:{name}")).raw("</b> deleted.</p><p>");
            body.link("/users", "Users").raw("</p>");
            page.render(200, "User deleted", body)
        }
        Err(status) => status_response(page, "User not deleted", &status),
    }
}

/// Issues a bearer token for the user after a confirmation, and shows it this once (the page is never cached:
/// every console answer carries `cache-control: no-store`).
pub async fn issue_token(console: &Console, page: Page<'_>, name: &str, form: &Form) -> Response {
    let action = format!("/users/{}/token", super::html::url_encode(name));
    if form.get("confirm") != Some("yes") {
        let mut body = Html::new();
        body.raw("<p>Issue a bearer token for <b>").text(format!("User:{name}")).raw("</b>? Whoever holds it acts ");
        body.raw("as that user on gRPC, <code>/metrics</code> and this console until the user is deleted. It is ");
        body.raw("shown once.</p>");
        page.form_open(&mut body, &action);
        hidden(&mut body, "confirm", "yes");
        body.raw("<button id=\"confirm\">Yes, issue it</button> ").link("/users", "Cancel").raw("</form>");
        return page.render(200, "Issue a token?", body);
    }
    match console.users.create_token(page.request(v1::CreateTokenRequest { user: name.to_string() })).await {
        Ok(answer) => {
            tracing::info!(user = %name, "token issued from the console");
            let mut body = Html::new();
            body.raw("<p class=\"ok\">A token for <b>").text(format!("User:{name}")).raw("</b>; copy it now, it ");
            body.raw("is not shown again:</p><p><code id=\"token\">").text(answer.into_inner().token);
            body.raw("</code></p><p class=\"muted\">Send it as <code>Authorization: Bearer TOKEN</code> (for ");
            body.raw(
                "Prometheus: <code>authorization: {credentials: TOKEN}</code>), or as <code>RILL_TOKEN</code> to ",
            );
            body.raw("the CLI.</p><p>").link("/users", "Users").raw("</p>");
            page.render(200, "Token issued", body)
        }
        Err(status) => status_response(page, "Token not issued", &status),
    }
}

/// The fields of a binding, as the forms carry them and `AclAdmin` takes them.
const ACL_FIELDS: [&str; 7] = ["principal", "permission", "operation", "resource_type", "pattern_type", "name", "host"];

fn acl_of(form: &Form) -> v1::Acl {
    let field = |name: &str| form.get(name).unwrap_or("").trim().to_string();
    v1::Acl {
        resource_type: field("resource_type"),
        pattern_type: field("pattern_type"),
        name: field("name"),
        principal: field("principal"),
        host: field("host"),
        operation: field("operation"),
        permission: field("permission"),
    }
}

fn acl_field(acl: &v1::Acl, name: &str) -> String {
    match name {
        "principal" => acl.principal.clone(),
        "permission" => acl.permission.clone(),
        "operation" => acl.operation.clone(),
        "resource_type" => acl.resource_type.clone(),
        "pattern_type" => acl.pattern_type.clone(),
        "name" => acl.name.clone(),
        _ => if acl.host.is_empty() { "*" } else { &acl.host }.to_string(),
    }
}

/// "allow User:alice to read the topics prefixed orders-", as a confirmation words it.
fn described(acl: &v1::Acl) -> String {
    let resource = match (acl.resource_type.as_str(), acl.pattern_type.as_str(), acl.name.as_str()) {
        ("cluster", _, _) => "the cluster".to_string(),
        (kind, _, "*") => format!("every {kind}"),
        (kind, "prefixed", prefix) => format!("every {kind} whose name starts with {prefix:?}"),
        (kind, _, name) => format!("{kind} {name:?}"),
    };
    format!("{} {} to {} {resource}", acl.permission, acl.principal, acl.operation)
}

fn select(body: &mut Html, name: &'static str, options: &[&'static str]) {
    body.raw("<select name=\"").raw(name).raw("\">");
    for option in options {
        body.raw("<option>").raw(option).raw("</option>");
    }
    body.raw("</select>");
}

pub async fn acls(console: &Console, page: Page<'_>, query: &Form) -> Response {
    let request = page.request(v1::ListAclsRequest { filter: None });
    let mut acls = match console.acls.list_acls(request).await {
        Ok(answer) => answer.into_inner().acls,
        Err(status) => return status_response(page, "ACLs not listed", &status),
    };
    let search = query.get("q").unwrap_or("");
    if !search.is_empty() {
        let needle = search.to_lowercase();
        acls.retain(|acl| acl.principal.to_lowercase().contains(&needle) || acl.name.to_lowercase().contains(&needle));
    }
    let (shown, number, page_count) = match paged(page, query, &acls) {
        Ok(paged) => paged,
        Err(refusal) => return refusal,
    };
    let mut body = Html::new();
    body.raw("<form method=\"get\" action=\"/acls\"><input type=\"search\" name=\"q\" ");
    body.raw("placeholder=\"principal or resource name\" value=\"")
        .text(search)
        .raw("\"> <button>Search</button></form>");
    body.raw("<p id=\"acl-count\">").text(format!("{} bindings.", count(acls.len() as u64))).raw("</p>");
    body.raw("<table id=\"acls\"><tr><th>principal</th><th>permission</th><th>operation</th><th>resource</th>");
    body.raw("<th>pattern</th><th>name</th><th>host</th>");
    if !page.is_read_only {
        body.raw("<th></th>");
    }
    body.raw("</tr>");
    for acl in shown {
        body.raw("<tr>");
        for field in ACL_FIELDS {
            body.cell(acl_field(acl, field));
        }
        if !page.is_read_only {
            body.raw("<td>");
            page.form_open(&mut body, "/acls/remove");
            for field in ACL_FIELDS {
                hidden(&mut body, field, &acl_field(acl, field));
            }
            body.raw("<button class=\"danger\">Remove…</button></form></td>");
        }
        body.raw("</tr>");
    }
    body.raw("</table>");
    pager(&mut body, "/acls", search, number, page_count);
    if !page.is_read_only {
        body.raw("<h2>Add a binding</h2>");
        page.form_open(&mut body, "/acls");
        body.raw("<fieldset class=\"stack\"><label>Principal <input name=\"principal\" required ");
        body.raw("placeholder=\"User:alice, or User:* for everyone\"></label><label>Permission ");
        select(&mut body, "permission", &[Permission::Allow.name(), Permission::Deny.name()]);
        body.raw("</label><label>Operation ");
        select(&mut body, "operation", &Operation::ALL.map(Operation::name));
        body.raw("</label><label>Resource type ");
        select(&mut body, "resource_type", &ResourceType::ALL.map(ResourceType::name));
        body.raw("</label><label>Pattern ");
        select(&mut body, "pattern_type", &[PatternType::Literal.name(), PatternType::Prefixed.name()]);
        body.raw("</label><label>Name (<code>*</code>: every one; the cluster's is <code>kafka-cluster</code>) ");
        body.raw("<input name=\"name\" required></label><button id=\"add-acl\">Add…</button></fieldset></form>");
    }
    page.render(200, "ACLs", body)
}

pub async fn add_acl(console: &Console, page: Page<'_>, form: &Form) -> Response {
    let acl = acl_of(form);
    if form.get("confirm") != Some("yes") {
        // Checked as the service reads it, before anything is asked: a binding it would refuse is refused now.
        if let Err(status) = crate::auth::acl_service::binding_from_wire(acl.clone()) {
            return status_response(page, "ACL not added", &status);
        }
        return acl_confirm(page, &acl, "/acls", "Add this binding?", "Yes, add it");
    }
    match console.acls.add_acls(page.request(v1::AddAclsRequest { acls: vec![acl.clone()] })).await {
        Ok(answer) => {
            let mut body = Html::new();
            let what = if answer.into_inner().added == 0 { "was already held" } else { "added" };
            body.raw("<p class=\"ok\">Binding ").text(what).raw(": ").text(described(&acl)).raw(".</p><p>");
            body.link("/acls", "ACLs").raw("</p>");
            page.render(200, "ACL added", body)
        }
        Err(status) => status_response(page, "ACL not added", &status),
    }
}

pub async fn remove_acl(console: &Console, page: Page<'_>, form: &Form) -> Response {
    let acl = acl_of(form);
    if form.get("confirm") != Some("yes") {
        return acl_confirm(page, &acl, "/acls/remove", "Remove this binding?", "Yes, remove it");
    }
    // Every field named: the filter matches this one binding and no other.
    let filter = v1::AclFilter {
        resource_type: Some(acl.resource_type.clone()),
        pattern_type: Some(acl.pattern_type.clone()),
        name: Some(acl.name.clone()),
        principal: Some(acl.principal.clone()),
        host: Some(acl_field(&acl, "host")),
        operation: Some(acl.operation.clone()),
        permission: Some(acl.permission.clone()),
    };
    match console.acls.remove_acls(page.request(v1::RemoveAclsRequest { filter: Some(filter) })).await {
        Ok(answer) if answer.get_ref().removed.is_empty() => {
            page.error(404, "ACL not removed", &format!("No binding {} is held.", described(&acl)))
        }
        Ok(_) => {
            let mut body = Html::new();
            body.raw("<p class=\"ok\">Binding removed: ").text(described(&acl)).raw(".</p><p>");
            body.link("/acls", "ACLs").raw("</p>");
            page.render(200, "ACL removed", body)
        }
        Err(status) => status_response(page, "ACL not removed", &status),
    }
}

fn acl_confirm(page: Page<'_>, acl: &v1::Acl, action: &str, title: &str, yes: &'static str) -> Response {
    let mut body = Html::new();
    body.raw("<p id=\"binding\">").text(format!("{}?", described(acl))).raw("</p>");
    page.form_open(&mut body, action);
    for field in ACL_FIELDS {
        hidden(&mut body, field, &acl_field(acl, field));
    }
    hidden(&mut body, "confirm", "yes");
    body.raw("<button id=\"confirm\">").raw(yes).raw("</button> ");
    body.link("/acls", "Cancel").raw("</form>");
    page.render(200, title, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binding_is_worded_as_its_resource_reads() {
        let acl = |kind: &str, pattern: &str, name: &str| v1::Acl {
            resource_type: kind.into(),
            pattern_type: pattern.into(),
            name: name.into(),
            principal: "User:alice".into(),
            host: String::new(),
            operation: "read".into(),
            permission: "allow".into(),
        };
        assert_eq!(described(&acl("topic", "literal", "orders")), "allow User:alice to read topic \"orders\"");
        assert_eq!(described(&acl("group", "literal", "*")), "allow User:alice to read every group");
        let prefixed = described(&acl("topic", "prefixed", "orders-"));
        assert_eq!(prefixed, "allow User:alice to read every topic whose name starts with \"orders-\"");
        assert_eq!(described(&acl("cluster", "literal", "kafka-cluster")), "allow User:alice to read the cluster");
        assert_eq!(acl_field(&acl("topic", "literal", "o"), "host"), "*", "an empty host is every host");
    }
}
