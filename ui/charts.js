// Small canvas charts: no library, no network. Colours come from the stylesheet (light or dark).
const css = (name, fallback) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;

function frame(canvas) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = { l: 44, r: 10, t: 10, b: 24 };
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = css("--muted", "#667085");
  ctx.strokeStyle = css("--line", "#e4e7ec");
  return { ctx, w, h, pad, iw: w - pad.l - pad.r, ih: h - pad.t - pad.b };
}
function axes(f, max, labels) {
  const { ctx, pad, iw, ih } = f;
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + ih - (ih * i) / 4;
    ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(pad.l + iw, y); ctx.stroke();
    ctx.fillText(((max * i) / 4).toFixed(max < 4 ? 1 : 0), 4, y + 4);
  }
  labels.forEach(([x, text]) => ctx.fillText(text, x - 16, pad.t + ih + 16));
}
const hhmm = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });

export function barChart(canvas, points) {
  const f = frame(canvas);
  const max = Math.max(1, ...points.map((p) => p.a + p.b));
  const n = Math.max(points.length, 1), bw = f.iw / n;
  const labels = points.map((p, i) => [f.pad.l + i * bw + bw / 2, hhmm(p.t)]).filter((_, i) => i % 12 === 0);
  axes(f, max, labels);
  const ok = css("--success", "#18794e"), bad = css("--failed", "#c62828");
  points.forEach((p, i) => {
    const x = f.pad.l + i * bw + 1, ha = (p.a / max) * f.ih, hb = (p.b / max) * f.ih;
    f.ctx.fillStyle = ok; f.ctx.fillRect(x, f.pad.t + f.ih - ha, bw - 2, ha);
    f.ctx.fillStyle = bad; f.ctx.fillRect(x, f.pad.t + f.ih - ha - hb, bw - 2, hb);
  });
}

export function lineChart(canvas, points) {
  const f = frame(canvas);
  const max = Math.max(1, ...points.map((p) => p.v));
  if (points.length < 2) { axes(f, max, []); return; }
  const t0 = points[0].t, t1 = points[points.length - 1].t, span = Math.max(1, t1 - t0);
  const x = (t) => f.pad.l + ((t - t0) / span) * f.iw, y = (v) => f.pad.t + f.ih - (v / max) * f.ih;
  axes(f, max, hhmm(t0) === hhmm(t1) ? [[x(t1) - 16, hhmm(t1)]] : [[x(t0) + 16, hhmm(t0)], [x(t1) - 16, hhmm(t1)]]);
  f.ctx.strokeStyle = css("--accent", "#2f5bd3"); f.ctx.lineWidth = 2; f.ctx.beginPath();
  points.forEach((p, i) => (i ? f.ctx.lineTo(x(p.t), y(p.v)) : f.ctx.moveTo(x(p.t), y(p.v))));
  f.ctx.stroke(); f.ctx.lineWidth = 1;
}
