// What manatee-adm prints is built of these: table cells made safe, tables padded to their
// widest cell, and byte counts in binary units. The views themselves are in views.ts.

/** A user-supplied string made safe for one table cell (no control characters, bounded). */
export function cell(s: string, maxChars = 60): string {
  // eslint-disable-next-line no-control-regex -- the point is to replace control characters
  const clean = s.replace(/[\x00-\x1f\x7f]/g, '?');
  return clean.length > maxChars ? `${clean.slice(0, maxChars - 1)}…` : clean;
}

/** Columns padded to their widest cell, two spaces apart, no trailing blanks. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i] ?? 'TiB'}`;
}
