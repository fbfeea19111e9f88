// Runs in the page (pass it to page.evaluate with its options): every piece of text under `root`,
// and every box matching `boxes`, that reaches past an ancestor that clips it (overflow hidden or
// clip), or past the window, with no box that scrolls horizontally in between. A box that scrolls
// stands in for its content: it must fit itself. With `wholePage`, a page wider than the window
// is one more finding. The book's check and the dashboard's share it.
export function cutOff({ root, boxes, wholePage }) {
  const found = [];
  const viewport = document.documentElement.clientWidth;
  const describe = (node) => {
    const el = node.nodeType === Node.TEXT_NODE ? node.parentElement : node;
    const text = (node.textContent || el.getAttribute("alt") || el.tagName).trim().replace(/\s+/g, " ");
    return `<${el.tagName.toLowerCase()}> "${text.slice(0, 60)}"`;
  };
  const check = (node, rect) => {
    let box = { left: rect.left, right: rect.right };
    for (let el = node.parentElement; el && el !== document.documentElement; el = el.parentElement) {
      const overflow = getComputedStyle(el).overflowX;
      if (overflow === "visible") continue;
      const r = el.getBoundingClientRect();
      if (overflow === "auto" || overflow === "scroll") {
        box = { left: r.left, right: r.right };
      } else if (box.right > r.right + 1 || box.left < r.left - 1) {
        found.push(`${describe(node)} is cut off by a <${el.tagName.toLowerCase()}> that does not scroll`);
        return;
      }
    }
    if (box.right > viewport + 1 || box.left < -1) {
      found.push(`${describe(node)} reaches ${Math.round(box.right)} px in a ${viewport} px window`);
    }
  };
  const top = document.querySelector(root);
  const walker = document.createTreeWalker(top, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.textContent.trim() || node.parentElement.closest("script, style")) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const rect of range.getClientRects()) {
      if (rect.width > 0) check(node, rect);
    }
  }
  for (const el of top.querySelectorAll(boxes)) {
    const rect = el.getBoundingClientRect();
    if (rect.width > 0) check(el, rect);
  }
  if (wholePage && document.documentElement.scrollWidth > viewport + 1) {
    found.push(`the page itself is ${document.documentElement.scrollWidth} px wide in a ${viewport} px window`);
  }
  return [...new Set(found)].slice(0, 8);
}
