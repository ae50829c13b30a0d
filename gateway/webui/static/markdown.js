// A small Markdown renderer for model output that is safe by construction:
// it only ever creates elements from a fixed list and puts model text in
// text nodes, so no input can produce an attribute, an event handler or a
// tag the renderer did not choose. Links are made only for absolute http(s)
// URLs. It covers what chat answers use (paragraphs, line breaks, headings,
// emphasis, code, links, lists, quotes, rules) and deliberately nothing else:
// raw HTML in the input stays visible as text.

// Nesting is bounded so hostile input cannot exhaust the stack.
const MAX_DEPTH = 8;

const FENCE = /^ {0,3}(`{3,}|~{3,})(.*)$/;
const HEADING = /^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/;
const QUOTE = /^ {0,3}>[ ]?(.*)$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const ITEM = /^([ \t]*)(?:([-*+])|(\d{1,9})[.)])[ \t]+(.*)$/;
// Sticky: matched at a given position without slicing the string.
const LINK = /\[([^\[\]\n]+)\]\(([^\s()]+(?:\([^\s()]*\)[^\s()]*)*)(?:[ \t]+"[^"\n]*")?\)/y;
const AUTOLINK = /https?:\/\/[^\s<>"'`]+/iy;
const ESCAPABLE = "\\`*_{}[]()#+-.!<>~|";

function el(tag) {
  return document.createElement(tag);
}

function indentOf(line) {
  return line.match(/^[ \t]*/)[0].replace(/\t/g, "    ").length;
}

function item(line) {
  const m = ITEM.exec(line);
  if (!m) return null;
  return { indent: indentOf(m[1]), ordered: m[3] !== undefined, start: m[3] ? parseInt(m[3], 10) : 1, text: m[4] };
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || QUOTE.test(line) || RULE.test(line) || ITEM.test(line);
}

// safeURL returns the normalized URL when it is absolute http or https, and
// null for anything else (javascript:, data:, relative paths, garbage).
export function safeURL(raw) {
  let u;
  try {
    u = new URL(raw);
  } catch {
    return null;
  }
  return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
}

function link(href) {
  const a = el("a");
  a.href = href;
  // The answer's links open away from the chat and learn nothing about it.
  a.rel = "noopener noreferrer";
  a.target = "_blank";
  return a;
}

/** renderMarkdown appends the rendering of src to parent. */
export function renderMarkdown(src, parent, depth = 0) {
  const lines = String(src ?? "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i++;
      continue;
    }
    let m;
    if ((m = FENCE.exec(line)) && !(m[1][0] === "`" && m[2].includes("`"))) {
      const fence = m[1];
      const lang = m[2].trim().split(/\s+/)[0];
      const body = [];
      i++;
      // An unclosed fence runs to the end, which is what a streaming answer
      // looks like half way through a code block.
      while (i < lines.length && !closesFence(lines[i], fence)) body.push(lines[i++]);
      i++;
      const pre = el("pre");
      const code = el("code");
      if (lang) code.dataset.lang = lang;
      code.textContent = body.join("\n");
      pre.append(code);
      parent.append(pre);
      continue;
    }
    if (RULE.test(line)) {
      parent.append(el("hr"));
      i++;
      continue;
    }
    if ((m = HEADING.exec(line))) {
      // The page owns h1 and h2; an answer's headings start at h3.
      const h = el("h" + Math.min(6, m[1].length + 2));
      renderInline(m[2], h);
      parent.append(h);
      i++;
      continue;
    }
    if (QUOTE.test(line) && depth < MAX_DEPTH) {
      const inner = [];
      while (i < lines.length && (m = QUOTE.exec(lines[i]))) {
        inner.push(m[1]);
        i++;
      }
      const bq = el("blockquote");
      renderMarkdown(inner.join("\n"), bq, depth + 1);
      parent.append(bq);
      continue;
    }
    if (item(line)) {
      i = renderList(lines, i, parent, depth);
      continue;
    }
    const para = [line];
    i++;
    while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) para.push(lines[i++]);
    const p = el("p");
    para.forEach((l, k) => {
      if (k) p.append(el("br"));
      renderInline(l.trim(), p);
    });
    parent.append(p);
  }
}

function closesFence(line, fence) {
  const t = line.trim();
  return t.length >= fence.length && t[0] === fence[0] && /^(`+|~+)$/.test(t);
}

// renderList renders the list starting at lines[i] and returns the index of
// the first line after it. Items indented further open a nested list.
function renderList(lines, i, parent, depth) {
  const first = item(lines[i]);
  const list = el(first.ordered ? "ol" : "ul");
  if (first.ordered && first.start !== 1) list.start = first.start;
  let li = null;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      let j = i + 1;
      while (j < lines.length && !lines[j].trim()) j++;
      const next = j < lines.length ? item(lines[j]) : null;
      if ((next && next.indent >= first.indent) || (li && j < lines.length && indentOf(lines[j]) > first.indent)) {
        i = j;
        continue;
      }
      break;
    }
    const it = item(line);
    if (it && it.indent < first.indent) break;
    if (it && it.indent < first.indent + 2) {
      if (it.ordered !== first.ordered) break;
      li = el("li");
      renderInline(it.text, li);
      list.append(li);
      i++;
      continue;
    }
    if (it && li && depth < MAX_DEPTH) {
      i = renderList(lines, i, li, depth + 1);
      continue;
    }
    if (li && (indentOf(line) > first.indent || !startsBlock(line))) {
      li.append(el("br"));
      renderInline(line.trim(), li);
      i++;
      continue;
    }
    break;
  }
  parent.append(list);
  return i;
}

function isWordChar(c) {
  return c !== undefined && /[\p{L}\p{N}]/u.test(c);
}

function isSpace(c) {
  return c === undefined || /\s/.test(c);
}

/** renderInline appends the inline rendering of text (one line) to parent. */
export function renderInline(text, parent, depth = 0, inLink = false) {
  let buf = "";
  const flush = () => {
    if (buf) parent.append(document.createTextNode(buf));
    buf = "";
  };
  // Where a search for a closing marker (or code fence) already failed: any
  // later search for the same marker fails too, which keeps unbalanced input
  // linear.
  const noCloseFrom = {};
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "\\" && i + 1 < text.length && ESCAPABLE.includes(text[i + 1])) {
      buf += text[i + 1];
      i += 2;
      continue;
    }
    if (c === "`") {
      let n = 1;
      while (text[i + n] === "`") n++;
      const fence = "`".repeat(n);
      const end = noCloseFrom[fence] <= i ? -1 : text.indexOf(fence, i + n);
      if (end === -1) noCloseFrom[fence] = i;
      if (end !== -1) {
        flush();
        let inner = text.slice(i + n, end);
        if (inner.length > 2 && inner[0] === " " && inner[inner.length - 1] === " ") inner = inner.slice(1, -1);
        const code = el("code");
        code.textContent = inner;
        parent.append(code);
        i = end + n;
        continue;
      }
      buf += fence;
      i += n;
      continue;
    }
    if (c === "[" && !inLink && depth < MAX_DEPTH) {
      LINK.lastIndex = i;
      const m = LINK.exec(text);
      if (m) {
        flush();
        const href = safeURL(m[2]);
        if (href) {
          const a = link(href);
          renderInline(m[1], a, depth + 1, true);
          parent.append(a);
        } else {
          // Not a link we will make: keep the label, drop the target.
          renderInline(m[1], parent, depth + 1, inLink);
        }
        i += m[0].length;
        continue;
      }
    }
    if ((c === "h" || c === "H") && !inLink && !isWordChar(text[i - 1])) {
      AUTOLINK.lastIndex = i;
      const m = AUTOLINK.exec(text);
      if (m) {
        const url = trimAutolink(m[0]);
        const href = safeURL(url);
        if (href) {
          flush();
          const a = link(href);
          a.textContent = url;
          parent.append(a);
          i += url.length;
          continue;
        }
      }
    }
    if ((c === "*" || c === "_") && depth < MAX_DEPTH) {
      const marker = text[i + 1] === c ? c + c : c;
      const start = i + marker.length;
      const opens = !isSpace(text[start]) && !(c === "_" && isWordChar(text[i - 1]));
      if (opens && !(noCloseFrom[marker] <= start)) {
        const end = findClose(text, start, marker);
        if (end === -1) {
          noCloseFrom[marker] = start;
        } else {
          flush();
          const node = el(marker.length === 2 ? "strong" : "em");
          renderInline(text.slice(start, end), node, depth + 1, inLink);
          parent.append(node);
          i = end + marker.length;
          continue;
        }
      }
      buf += marker;
      i += marker.length;
      continue;
    }
    buf += c;
    i++;
  }
  flush();
}

function findClose(text, from, marker) {
  const c = marker[0];
  let j = text.indexOf(marker, from + 1);
  while (j !== -1) {
    const before = text[j - 1];
    const after = text[j + marker.length];
    const okSpace = !isSpace(before);
    const okWord = c !== "_" || !isWordChar(after);
    // A single marker must not be half of a double one.
    const okSingle = marker.length === 2 || (after !== c && before !== c);
    if (okSpace && okWord && okSingle) return j;
    j = text.indexOf(marker, j + 1);
  }
  return -1;
}

// trimAutolink drops the punctuation that ends a sentence around a bare URL,
// keeping a closing parenthesis that balances one inside it.
function trimAutolink(url) {
  for (;;) {
    const last = url[url.length - 1];
    if (".,;:!?*_~'\"".includes(last)) {
      url = url.slice(0, -1);
      continue;
    }
    if (last === ")" && url.split("(").length < url.split(")").length) {
      url = url.slice(0, -1);
      continue;
    }
    return url;
  }
}
