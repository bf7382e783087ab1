/** Plain-text tables and grids for terminals (no colour, fixed-width columns). */
export function table(rows: string[][], opts: { header?: boolean; indent?: string } = {}): string {
  const widths: number[] = [];
  for (const r of rows) for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, [...c].length);
  const ind = opts.indent ?? "";
  const lines = rows.map((r) =>
    (
      ind + r.map((c, i) => (i === r.length - 1 ? c : c + " ".repeat(widths[i] - [...c].length))).join("  ")
    ).trimEnd(),
  );
  if (opts.header && lines.length) lines.splice(1, 0, ind + widths.map((w) => "-".repeat(w)).join("  "));
  return lines.join("\n");
}
