/** QR codes as SVG: one <path> of the dark modules (uqr gives the matrix; no other dependency). */
import { encode } from 'uqr';

/** An SVG QR code of `text` with a 4-module quiet zone; `label` is its accessible name. */
export function qrSvg(text: string, label: string, cls = 'qr'): string {
  const qr = encode(text, { ecc: 'M', border: 4 });
  let d = '';
  for (let y = 0; y < qr.size; y++) {
    const row = qr.data[y]!;
    // One rectangle per horizontal run of dark modules keeps the path short.
    for (let x = 0; x < qr.size; x++) {
      if (!row[x]) continue;
      let end = x + 1;
      while (end < qr.size && row[end]) end++;
      d += `M${x} ${y}h${end - x}v1h-${end - x}z`;
      x = end;
    }
  }
  const esc = label.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" class="${cls}" viewBox="0 0 ${qr.size} ${qr.size}" shape-rendering="crispEdges" role="img" aria-label="${esc}">` +
    `<title>${esc}</title><rect width="${qr.size}" height="${qr.size}" fill="#fff"/><path fill="#000" d="${d}"/></svg>`
  );
}
