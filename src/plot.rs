//! Line charts as SVG and PNG, drawn with plotters: one function for every chart slimnet writes (sensitivity
//! curves, accuracy against size). Text needs a TrueType font for its metrics (and for the PNG's glyphs): the
//! first of `$SLIMNET_FONT` and a few usual system fonts that exists is used.

use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// Fonts tried, in order, after `$SLIMNET_FONT`.
const FONTS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Registers the font once; the error says how to provide one.
fn font() -> Result<()> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let candidates = std::env::var("SLIMNET_FONT")
                .ok()
                .into_iter()
                .chain(FONTS.iter().map(|s| s.to_string()));
            for path in candidates {
                if let Ok(bytes) = std::fs::read(&path) {
                    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                    if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                        return Ok(());
                    }
                }
            }
            Err("plots need a TrueType font: set SLIMNET_FONT=/path/to/font.ttf or install fonts-dejavu-core"
                .to_string())
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// One line of a chart: points (x, y) with an optional ± spread drawn as error bars.
pub struct Series {
    /// Legend label.
    pub label: String,
    /// (x, y, spread).
    pub points: Vec<(f64, f64, f64)>,
    /// Draw markers only, no line (e.g. single results such as peers').
    pub markers_only: bool,
}

/// A chart: title, axis descriptions, whether x is logarithmic, the series.
pub struct Chart {
    /// Caption.
    pub title: String,
    /// X axis description.
    pub x_label: String,
    /// Y axis description.
    pub y_label: String,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// The lines.
    pub series: Vec<Series>,
}

/// A tick label: plain decimals without float noise in the usual range, scientific notation outside it.
fn number(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e6).contains(&x.abs()) {
        return format!("{x:.0e}");
    }
    let text = format!("{x:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

const WIDTH: u32 = 800;
const HEIGHT: u32 = 500;

/// Writes `chart` as `stem.svg` and `stem.png`.
pub fn write(chart: &Chart, stem: &Path) -> Result<()> {
    font()?;
    let svg = stem.with_extension("svg");
    let png = stem.with_extension("png");
    {
        let root = SVGBackend::new(&svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw(chart, &root).with_context(|| format!("drawing {}", svg.display()))?;
    }
    {
        let root = BitMapBackend::new(&png, (WIDTH, HEIGHT)).into_drawing_area();
        draw(chart, &root).with_context(|| format!("drawing {}", png.display()))?;
    }
    Ok(())
}

fn bounds(chart: &Chart) -> Result<((f64, f64), (f64, f64))> {
    let pts = chart.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y, e) in pts {
        if !(x.is_finite() && y.is_finite()) || chart.log_x && x <= 0.0 {
            continue;
        }
        (x0, x1) = (x0.min(x), x1.max(x));
        (y0, y1) = (y0.min(y - e), y1.max(y + e));
    }
    if x0 > x1 {
        bail!("nothing to plot in {:?}", chart.title);
    }
    let pad_y = ((y1 - y0) * 0.05).max(0.5);
    let (x0, x1) = if chart.log_x {
        (x0 / 1.5, x1 * 1.5)
    } else {
        let pad = ((x1 - x0) * 0.03).max(1e-9);
        (x0 - pad, x1 + pad)
    };
    Ok(((x0, x1), (y0 - pad_y, y1 + pad_y)))
}

fn draw<DB: DrawingBackend>(chart: &Chart, root: &DrawingArea<DB, Shift>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("{e:?}");
    root.fill(&WHITE).map_err(err)?;
    let ((x0, x1), (y0, y1)) = bounds(chart)?;
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(&chart.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60);
    macro_rules! body {
        ($c:expr) => {{
            let mut c = $c;
            c.configure_mesh()
                .x_labels(8)
                .x_label_formatter(&|x| number(*x))
                .y_label_formatter(&|y| number(*y))
                .x_desc(chart.x_label.as_str())
                .y_desc(chart.y_label.as_str())
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(err)?;
            for (i, s) in chart.series.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .filter(|p| !chart.log_x || p.0 > 0.0)
                    .map(|p| (p.0, p.1))
                    .collect();
                if s.markers_only {
                    c.draw_series(pts.iter().map(|&p| Circle::new(p, 5, color.filled())))
                        .map_err(err)?
                        .label(s.label.as_str())
                        .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
                } else {
                    c.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                        .map_err(err)?
                        .label(s.label.as_str())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                        });
                    c.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                        .map_err(err)?;
                }
                let bars = s
                    .points
                    .iter()
                    .filter(|p| p.2 > 0.0 && (!chart.log_x || p.0 > 0.0));
                c.draw_series(bars.map(|&(x, y, e)| {
                    PathElement::new(vec![(x, y - e), (x, y + e)], color.stroke_width(1))
                }))
                .map_err(err)?;
            }
            c.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::LowerLeft)
                .draw()
                .map_err(err)?;
        }};
    }
    if chart.log_x {
        body!(builder
            .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
            .map_err(err)?);
    } else {
        body!(builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?);
    }
    root.present().map_err(err)?;
    Ok(())
}
