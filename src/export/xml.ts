/** A tiny XML writer (attributes escaped, two-space indentation). */
export interface XmlNode {
  name: string;
  attrs: Record<string, string | number>;
  children: XmlNode[];
}

const esc = (v: string | number) =>
  String(v).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

export function xmlNode(
  name: string,
  attrs: Record<string, string | number | undefined>,
  children: XmlNode[] = [],
): XmlNode {
  const a: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) a[k] = v;
  return { name, attrs: a, children };
}

export function renderXml(n: XmlNode, indent = ""): string {
  const attrs = Object.entries(n.attrs)
    .map(([k, v]) => ` ${k}="${esc(v)}"`)
    .join("");
  if (!n.children.length) return `${indent}<${n.name}${attrs}/>\n`;
  return `${indent}<${n.name}${attrs}>\n${n.children.map((c) => renderXml(c, `${indent}  `)).join("")}${indent}</${n.name}>\n`;
}
