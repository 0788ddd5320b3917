//! Inline SVG charts: no script, no image request. Coordinates are numbers the console computed; the only
//! text from data (bar labels) goes through [`Html::text`].

use std::fmt::Write;

use super::html::Html;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
// The axes below are drawn at these constants' values (x 70, y 160).
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 20.0;

/// A line per series (name, CSS class, values) over equally spaced points, with the y axis from 0 to the largest
/// value; `label` names the chart for screen readers.
pub fn lines(series: &[(&'static str, &'static str, Vec<f64>)], unit: &'static str, label: &'static str) -> Html {
    let max = series.iter().flat_map(|(_, _, values)| values.iter().copied()).fold(0.0_f64, f64::max);
    let top = if max > 0.0 { max * 1.1 } else { 1.0 };
    let points = series.iter().map(|(_, _, values)| values.len()).max().unwrap_or(0).max(2);
    let mut html = Html::new();
    html.raw("<svg class=\"chart\" viewBox=\"0 0 720 180\" role=\"img\" aria-label=\"").raw(label).raw("\">");
    axes(&mut html, top, unit);
    for (name, class, values) in series {
        // One sample is drawn as a level line: a path of one point would draw nothing.
        let values: Vec<f64> = if values.len() == 1 { vec![values[0]; 2] } else { values.clone() };
        let mut path = String::new();
        for (i, value) in values.iter().enumerate() {
            let x = LEFT + (WIDTH - LEFT - 10.0) * (i as f64) / ((points - 1) as f64);
            let y = (HEIGHT - BOTTOM) * (1.0 - value / top);
            let _ = write!(path, "{}{x:.1},{y:.1}", if i == 0 { "M" } else { " L" });
        }
        html.raw("<path class=\"").raw(class).raw("\" d=\"").text(path);
        html.raw("\"><title>").raw(name).raw("</title></path>");
    }
    html.raw("</svg><p class=\"legend\">");
    for (name, class, _) in series {
        html.raw("<span class=\"").raw(class).raw("\">■</span> ").raw(name).raw(" ");
    }
    html.raw("</p>");
    html
}

/// A bar per labelled value, with the y axis from 0 to the largest value.
pub fn bars(values: &[(String, i64)], unit: &'static str) -> Html {
    let max = values.iter().map(|(_, v)| *v).max().unwrap_or(0).max(0) as f64;
    let top = if max > 0.0 { max * 1.1 } else { 1.0 };
    let mut html = Html::new();
    html.raw("<svg class=\"chart\" viewBox=\"0 0 720 180\" role=\"img\" aria-label=\"lag chart\">");
    axes(&mut html, top, unit);
    // At most 60 units a bar, so one partition is not a wall.
    let slot = ((WIDTH - LEFT - 10.0) / values.len().max(1) as f64).min(60.0);
    for (i, (label, value)) in values.iter().enumerate() {
        let height = (HEIGHT - BOTTOM) * (*value).max(0) as f64 / top;
        html.raw("<rect class=\"bar\" x=\"").number(LEFT + slot * i as f64 + slot * 0.1);
        html.raw("\" y=\"").number(HEIGHT - BOTTOM - height).raw("\" width=\"").number(slot * 0.8);
        html.raw("\" height=\"").number(height).raw("\"><title>").text(label).raw(": ").text(value);
        html.raw("</title></rect>");
    }
    html.raw("</svg>");
    html
}

fn axes(html: &mut Html, top: f64, unit: &'static str) {
    html.raw("<line x1=\"70\" y1=\"0\" x2=\"70\" y2=\"160\" class=\"axis\"/>");
    html.raw("<line x1=\"70\" y1=\"160\" x2=\"720\" y2=\"160\" class=\"axis\"/>");
    html.raw("<text x=\"64\" y=\"12\" text-anchor=\"end\" class=\"tick\">").text(format!("{top:.0}")).raw("</text>");
    html.raw("<text x=\"64\" y=\"160\" text-anchor=\"end\" class=\"tick\">0</text>");
    html.raw("<text x=\"74\" y=\"176\" class=\"tick\">").raw(unit).raw("</text>");
}
