//! Plots of certified accuracy against radius, and other line charts, as SVG or PNG, with
//! plotters.
//!
//! Text is measured (SVG) and drawn (PNG) with DejaVu Sans, embedded in the crate (Bitstream Vera license,
//! `src/workflow/fonts/LICENSE-DejaVu.txt`), so plotting needs no system fonts or libraries.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, IoOperation, Result};

/// One line of a plot.
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::plot::Curve;
///
/// let c = Curve::new("sigma = 0.25", vec![(0.0, 0.9), (0.5, 0.6), (1.0, 0.0)]);
/// assert!(!c.dashed);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// Legend entry.
    pub label: String,
    /// `(x, y)` points, e.g. `(radius, accuracy)`, in increasing x.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (used for the Appendix D lower bounds).
    pub dashed: bool,
    /// A fixed RGB colour; `None` takes the next colour of the palette (a dashed curve: the
    /// colour of the solid curve before it).
    pub color: Option<(u8, u8, u8)>,
}

impl Curve {
    /// A solid curve.
    ///
    /// # Example
    /// ```
    /// let c = randomized_smoothing::workflow::plot::Curve::new("a", vec![(0.0, 1.0)]);
    /// assert_eq!(c.label, "a");
    /// ```
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            label: label.into(),
            points,
            dashed: false,
            color: None,
        }
    }

    /// The same curve, dashed.
    ///
    /// # Example
    /// ```
    /// assert!(randomized_smoothing::workflow::plot::Curve::new("a", vec![]).dashed().dashed);
    /// ```
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }

    /// The same curve in a fixed colour, outside the palette (the paper draws the
    /// undefended network's empirical bound in black).
    ///
    /// # Example
    /// ```
    /// let c = randomized_smoothing::workflow::plot::Curve::new("a", vec![]).color(0, 0, 0);
    /// assert_eq!(c.color, Some((0, 0, 0)));
    /// ```
    pub fn color(mut self, r: u8, g: u8, b: u8) -> Self {
        self.color = Some((r, g, b));
        self
    }
}

/// Registers the embedded font once, for the bitmap backend.
fn register_font() -> Result<()> {
    static FONT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        use std::io::Read;
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(&include_bytes!("fonts/DejaVuSans.ttf.gz")[..])
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        // plotters keeps fonts for the life of the program.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| "the embedded font does not parse".to_string())
    })
    .clone()
    .map_err(|reason| Error::InvalidParameter {
        name: "font",
        reason,
    })
}

/// The axes of a line chart: title, axis descriptions and the y range (the x range spans the
/// points).
///
/// # Example
/// ```
/// let axes = randomized_smoothing::workflow::plot::Axes::certified_accuracy("digits");
/// assert_eq!(axes.y_range, (0.0, 1.0));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Axes {
    /// Title above the chart.
    pub title: String,
    /// Description of the x axis.
    pub x_label: String,
    /// Description of the y axis.
    pub y_label: String,
    /// Lower and upper end of the y axis.
    pub y_range: (f64, f64),
}

impl Axes {
    /// Certified accuracy (0 to 1) against l2 radius.
    ///
    /// # Example
    /// ```
    /// let axes = randomized_smoothing::workflow::plot::Axes::certified_accuracy("sigma = 0.25");
    /// assert_eq!(axes.y_label, "certified accuracy");
    /// ```
    pub fn certified_accuracy(title: &str) -> Self {
        Self {
            title: title.to_string(),
            x_label: "radius (l2, pixels in [0, 1])".to_string(),
            y_label: "certified accuracy".to_string(),
            y_range: (0.0, 1.0),
        }
    }
}

/// Plots certified accuracy (0 to 1) against radius for each curve, to `path`: SVG if
/// it ends in `.svg`, PNG if in `.png` (1000x600 pixels).
///
/// # Errors
/// [`Error::InvalidParameter`] for another extension or no points at all; [`Error::Io`] if
/// the file cannot be written.
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::plot::{Curve, plot_certified_accuracy};
///
/// let path = std::env::temp_dir().join(format!("doc-plot-{}.svg", std::process::id()));
/// let curves = [Curve::new("sigma = 0.25", vec![(0.0, 0.9), (0.5, 0.6), (0.75, 0.0)])];
/// plot_certified_accuracy(&curves, "digits", &path)?;
/// assert!(std::fs::read_to_string(&path).unwrap().contains("<svg"));
/// # std::fs::remove_file(path).ok();
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn plot_certified_accuracy(curves: &[Curve], title: &str, path: &Path) -> Result<()> {
    plot_curves(curves, &Axes::certified_accuracy(title), path)
}

/// Plots the curves on the given axes, to `path`: SVG if it ends in `.svg`, PNG if in
/// `.png` (1000x600 pixels). The x axis starts at the smallest x and ends 5% past the
/// largest.
///
/// # Errors
/// [`Error::InvalidParameter`] for another extension, no points at all or an empty y range;
/// [`Error::Io`] if the file cannot be written.
///
/// # Example
/// ```
/// use randomized_smoothing::workflow::plot::{Axes, Curve, plot_curves};
///
/// let path = std::env::temp_dir().join(format!("doc-curves-{}.svg", std::process::id()));
/// let axes = Axes { title: "radius".into(), x_label: "p_A".into(), y_label: "radius".into(),
///                   y_range: (0.0, 4.0) };
/// plot_curves(&[Curve::new("Theorem 1", vec![(0.5, 0.0), (0.99, 2.33)])], &axes, &path)?;
/// assert!(std::fs::read_to_string(&path).unwrap().contains("p_A"));
/// # std::fs::remove_file(path).ok();
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn plot_curves(curves: &[Curve], axes: &Axes, path: &Path) -> Result<()> {
    let xs = curves.iter().flat_map(|c| c.points.iter().map(|p| p.0));
    let (x_min, x_max) = xs.fold((f64::NAN, f64::NAN), |(lo, hi), x| (lo.min(x), hi.max(x)));
    if !(x_min.is_finite() && x_max.is_finite()) {
        return Err(Error::InvalidParameter {
            name: "curves",
            reason: "no points to plot".into(),
        });
    }
    let (y_min, y_max) = axes.y_range;
    if !(y_min < y_max && y_max.is_finite() && y_min.is_finite()) {
        return Err(Error::InvalidParameter {
            name: "y_range",
            reason: format!(
                "an axis needs a finite, non-empty range, got {:?}",
                axes.y_range
            ),
        });
    }
    let x_max = if x_max > x_min {
        x_max + 0.05 * (x_max - x_min)
    } else {
        x_min + 1.0
    };
    let io = |e: String| Error::io_other(IoOperation::Write, path, e);
    let ranges = (x_min..x_max, y_min..y_max);
    match path.extension().and_then(|e| e.to_str()) {
        Some("svg") => {
            // Text is measured with the embedded font to lay the chart out.
            register_font()?;
            let root = SVGBackend::new(path, (1000, 600)).into_drawing_area();
            draw(&root, curves, axes, ranges).map_err(io)?;
            root.present().map_err(|e| io(e.to_string()))
        }
        Some("png") => {
            register_font()?;
            let root = BitMapBackend::new(path, (1000, 600)).into_drawing_area();
            draw(&root, curves, axes, ranges).map_err(io)?;
            root.present().map_err(|e| io(e.to_string()))
        }
        _ => Err(Error::InvalidParameter {
            name: "path",
            reason: format!("{} does not end in .svg or .png", path.display()),
        }),
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    curves: &[Curve],
    axes: &Axes,
    (x, y): (std::ops::Range<f64>, std::ops::Range<f64>),
) -> std::result::Result<(), String> {
    let text = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(text)?;
    let mut chart = ChartBuilder::on(root)
        .caption(&axes.title, ("sans-serif", 26))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)
        .map_err(text)?;
    chart
        .configure_mesh()
        .x_desc(&axes.x_label)
        .y_desc(&axes.y_label)
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(text)?;
    let mut solid = 0usize;
    for curve in curves {
        // A dashed curve takes the colour of the solid curve before it (its estimate).
        let style = match curve.color {
            Some((r, g, b)) => RGBColor(r, g, b).stroke_width(2),
            None => {
                if !curve.dashed {
                    solid += 1;
                }
                Palette99::pick(solid.saturating_sub(1)).stroke_width(2)
            }
        };
        let points = curve.points.iter().copied();
        let dashed = curve.dashed;
        let series = if dashed {
            chart.draw_series(DashedLineSeries::new(points, 8, 5, style))
        } else {
            chart.draw_series(LineSeries::new(points, style))
        };
        series
            .map_err(text)?
            .label(&curve.label)
            .legend(move |(x, y)| {
                // The legend's sample drawn as the curve is: two dashes for a dashed one.
                let (end, start) = if dashed { (8, 12) } else { (10, 10) };
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (end, 0)], style)
                    + PathElement::new(vec![(start, 0), (20, 0)], style)
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(text)?;
    Ok(())
}
