/** The pages' one stylesheet, served as /face/style.css (the CSP allows no inline style). */
import { createHash } from 'node:crypto';

export const CSS = `*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;color:#1a1a1a;background:#f5f6f8}
header,main,footer{max-width:52rem;margin:0 auto;padding:.75rem 1rem}
header{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;justify-content:space-between}
header a.home{font-weight:600;color:#1a1a1a;text-decoration:none}
a{color:#0b57d0;overflow-wrap:anywhere}
h1{font-size:1.25rem;margin:.25rem 0 1rem;overflow-wrap:anywhere}
h2{font-size:1.05rem;margin:0 0 .75rem}
.card{background:#fff;border-radius:.5rem;padding:1rem;margin:0 0 1rem;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.id{font-family:ui-monospace,"Noto Sans Mono",monospace;font-size:1.05rem;overflow-wrap:anywhere;word-break:break-all;user-select:all;margin:0}
.button{display:block;text-align:center;background:#0b57d0;color:#fff;padding:.8rem 1rem;border-radius:.5rem;text-decoration:none;font-weight:600;margin:0 0 1rem;overflow-wrap:anywhere}
dl{margin:0;display:grid;grid-template-columns:minmax(6rem,auto) 1fr;gap:.4rem 1rem}
dt{color:#555}
dd{margin:0;overflow-wrap:anywhere;min-width:0}
.tech{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.85rem}
th,td{text-align:left;padding:.3rem .4rem;border-bottom:1px solid #e3e5e8;vertical-align:top;overflow-wrap:anywhere}
td.data{font-family:ui-monospace,monospace;word-break:break-all}
.qrbox{text-align:center}
svg.qr{width:12rem;height:12rem;max-width:100%}
form.search{display:flex;gap:.5rem;margin:0 0 1rem}
form.search input{flex:1;min-width:0;font-size:1rem;padding:.6rem;border:1px solid #c4c7cc;border-radius:.4rem}
form.search button{font-size:1rem;padding:.6rem 1rem;border:0;border-radius:.4rem;background:#0b57d0;color:#fff}
.muted{color:#666;font-size:.9rem}
footer{color:#666;font-size:.85rem}
.tools{display:flex;gap:.75rem;align-items:center;flex-wrap:wrap}
form.logout{display:inline;margin:0;font-size:.85rem}
form.logout button,form.login button{font-size:.9rem;padding:.3rem .8rem;border:1px solid #0b57d0;border-radius:.4rem;background:#fff;color:#0b57d0}
form.login{display:flex;flex-direction:column;gap:.5rem}
form.login input{font-size:1rem;padding:.6rem;border:1px solid #c4c7cc;border-radius:.4rem}
.problem{color:#a50e0e}
.mark{display:inline-block;font-size:.75rem;background:#fce8b2;color:#5f3b00;border-radius:.25rem;padding:0 .35rem;margin-left:.25rem}
.graph{overflow-x:auto}
svg.lineage a.node:hover rect{stroke-width:2}
.labels{display:grid;grid-template-columns:repeat(auto-fill,minmax(9rem,1fr));gap:1rem}
.label{background:#fff;padding:.5rem;text-align:center;break-inside:avoid;page-break-inside:avoid}
.label svg.qr{width:100%;height:auto}
.label p{margin:.25rem 0 0;font-family:ui-monospace,monospace;font-size:.7rem;word-break:break-all}
@media print{
  @page{size:A4;margin:10mm}
  body{background:#fff}
  header,footer,.noprint{display:none}
  main{max-width:none;padding:0}
  .labels{grid-template-columns:repeat(4,1fr);gap:4mm}
  .label{border:0;padding:2mm}
}
`;

export const CSS_ETAG = `"${createHash('sha256').update(CSS).digest('base64url').slice(0, 16)}"`;
