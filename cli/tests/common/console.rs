//! The web console over plain HTTP/1.1, as a browser's form posts reach it: what the sign-in tests share.

use std::io::{Read, Write};
use std::net::TcpStream;

use super::DEADLINE;

/// One HTTP/1.1 request to an admin listener: the status, the `Set-Cookie` header's `name=value`, the body.
pub fn admin_http(admin: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, Option<String>, String) {
    let mut stream = TcpStream::connect(admin).expect("connect to the admin listener");
    stream.set_read_timeout(Some(DEADLINE)).expect("read timeout");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let cookie = head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case("set-cookie").then(|| value.split(';').next().unwrap_or("").trim().to_owned())
    });
    (status, cookie, body.to_owned())
}

/// Signs `user` in to the console on `admin` with the password `pw`; the session cookie.
pub fn sign_in(admin: &str, user: &str) -> String {
    let form = format!("Content-Type: application/x-www-form-urlencoded\r\nOrigin: http://{admin}\r\n");
    let (status, cookie, body) = admin_http(admin, "POST", "/login", &form, &format!("user={user}&password=pw"));
    cookie.unwrap_or_else(|| panic!("{user} not signed in on {admin}: {status} {body}"))
}
