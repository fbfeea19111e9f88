// The book as a learner reads it: every page opened in headless Chromium at a desktop and a phone
// width. Fails when text or a picture is cut off with no way to scroll to it, when a Mermaid
// diagram is not drawn or is drawn as Mermaid's error graphic ("Syntax error in text"), when a code
// block or a table has to be scrolled sideways at the desktop width, when an
// internal link, anchor or image is broken, or when the search finds nothing for one of the
// course's key terms.
//
// Usage: node check.mjs BOOK_URL BOOK_DIR
//   BOOK_URL: where the built book is served, e.g. http://127.0.0.1:3000/
//   BOOK_DIR: the built book on disk (book/book), to list its pages
// CHROMIUM names the browser (default /usr/bin/chromium, Debian's package).

import { readdirSync } from "node:fs";
import { chromium } from "playwright-core";
import { cutOff } from "./cut-off.mjs";

const [base, dir] = process.argv.slice(2);
if (!base || !dir) {
  console.error("usage: node check.mjs BOOK_URL BOOK_DIR");
  process.exit(2);
}

const widths = [
  { name: "desktop", width: 1280, height: 900 },
  { name: "phone", width: 420, height: 860 },
];

// Words a learner would search for; each must find at least one result.
const searchTerms = [
  "hit ratio",
  "stampede",
  "single flight",
  "lease",
  "tombstone",
  "XFetch",
  "hash tag",
  "write-through",
  "maxmemory",
  "fencing",
  "CROSSSLOT",
  "evicted_keys",
  "GCRA",
  "X-Forwarded-For",
  "Retry-After",
];

// print.html repeats every page; toc.html and 404.html are mdBook's own.
const pages = readdirSync(dir)
  .filter((f) => f.endsWith(".html") && !["print.html", "toc.html", "404.html"].includes(f))
  .sort();

const problems = [];
const problem = (where, what) => problems.push(`${where}: ${what}`);

// The content's text, pictures, tables and code, none cut off, the page no wider than the window.
const contentCutOff = { root: "main", boxes: "img, svg, table, pre", wholePage: true };

// Runs in the page: every diagram Mermaid drew as its error graphic instead of the diagram. For bad
// input Mermaid still draws an svg, so "every diagram has an svg" is not enough: its error svg says
// aria-roledescription="error" and holds elements of class error-icon and error-text ("Syntax error
// in text", "mermaid version ..."). Every svg Mermaid draws has those class names in its <style>,
// so this looks for the elements, not the words. A failed diagram is named by its place on the
// page and the heading above it, and by Mermaid's own parse error (where, and what it expected)
// for the source the page was served with (sources: the pre.mermaid texts of the served HTML, in
// order, since Mermaid replaces them with its drawing).
async function mermaidErrors(sources) {
  const isError = (svg) =>
    svg.getAttribute("aria-roledescription") === "error" || svg.querySelector(".error-icon, .error-text");
  const found = [];
  const diagrams = [...document.querySelectorAll("pre.mermaid")];
  for (const [i, pre] of diagrams.entries()) {
    const svg = pre.querySelector("svg");
    if (!svg) continue;
    if (!isError(svg)) {
      // A label Mermaid parsed as Markdown it does not support ("1. Cheap to compute?" is a list)
      // is drawn as the words "Unsupported markdown: list", with no error graphic: a diagram that
      // says nothing, which the error check passes.
      const unsupported = [...svg.querySelectorAll("*")].find(
        (e) => e.children.length === 0 && /Unsupported markdown/.test(e.textContent),
      );
      if (unsupported) {
        found.push(
          `Mermaid diagram ${i + 1} of ${diagrams.length}, starting "${(sources[i] || "").trim().split("\n")[0]}", ` +
            `draws a label as "${unsupported.textContent.trim()}" (Markdown in a label: a number and a dot make a list)`,
        );
      }
      continue;
    }
    let heading = pre;
    while (heading && !/^H[1-6]$/.test(heading.tagName)) {
      heading = heading.previousElementSibling || heading.parentElement;
      if (heading === document.querySelector("main")) heading = null;
    }
    const shown = [...svg.querySelectorAll(".error-text")].map((t) => t.textContent.trim())[0] || "error";
    const source = sources[i] || "";
    let why = "";
    try {
      await window.mermaid.parse(source);
    } catch (e) {
      // "Parse error on line 4:", the text around it, a caret, "Expecting ..., got ...".
      const lines = String((e && e.message) || e).split("\n").filter((l) => l.trim());
      why = lines[0] || "";
      if (lines.length > 1 && !/^-*\^$/.test(lines[1])) why += ` ${lines[1].trim()}`;
      if (lines.length > 2) why += ` (${lines[lines.length - 1].trim().slice(0, 300)})`;
    }
    found.push(
      `Mermaid diagram ${i + 1} of ${diagrams.length}` +
        (heading ? ` (under "${heading.textContent.trim()}")` : "") +
        `, starting "${source.trim().split("\n")[0]}", is drawn as Mermaid's error graphic ("${shown}")` +
        (why ? `: ${why}` : ""),
    );
  }
  // An error graphic outside every pre.mermaid (one Mermaid failed to put in place) counts too.
  const stray = [...document.querySelectorAll("svg")].filter((svg) => !svg.closest("pre.mermaid") && isError(svg));
  if (stray.length) found.push(`${stray.length} Mermaid error graphic(s) outside any diagram`);
  return found;
}

// Runs in the page: every code block and table that scrolls sideways. On a phone that is the
// best there is; at a desktop width it hides the end of every long line, so there it fails. The
// column is widened to fit 100 columns of code (book/course.css), so a block that scrolls there has
// a longer line: a string to split, a demo table with too many columns, a log line to wrap.
function scrollsSideways() {
  const found = [];
  for (const el of document.querySelectorAll("main pre > code, main .table-wrapper")) {
    if (el.scrollWidth > el.clientWidth + 1) {
      const text = el.textContent.trim().replace(/\s+/g, " ").slice(0, 60);
      const what = el.tagName === "CODE" ? "a code block" : "a table";
      found.push(`${what} is ${el.scrollWidth} px wide in a ${el.clientWidth} px column: "${text}"`);
    }
  }
  return found;
}

// Runs in the page: internal links (page and anchor) and the pictures of the content.
function linksAndImages() {
  const links = [...document.querySelectorAll("main a[href]")]
    .map((a) => a.href)
    .filter((href) => href.startsWith(location.origin));
  const images = [...document.querySelectorAll("main img")].map((img) => ({
    src: img.src,
    loaded: img.complete && img.naturalWidth > 0,
  }));
  return { links, images };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  const ids = new Map(); // page URL without anchor -> the ids it defines, or null if it did not load
  const idsOf = async (page, url) => {
    if (!ids.has(url)) {
      const response = await page.goto(url);
      ids.set(url, response && response.ok() ? await page.evaluate(() => [...document.querySelectorAll("[id]")].map((e) => e.id)) : null);
    }
    return ids.get(url);
  };

  for (const { name, width, height } of widths) {
    const page = await browser.newPage({ viewport: { width, height } });
    for (const file of pages) {
      const url = new URL(file, base).href;
      const response = await page.goto(url, { waitUntil: "load" });
      if (!response || !response.ok()) {
        problem(`${file} (${name})`, `did not load: ${response && response.status()}`);
        continue;
      }
      // Mermaid draws its diagrams after the load event: measure the drawn page, not the source
      // text it replaces, and count a diagram that never draws as a problem of its own.
      try {
        await page.waitForFunction(
          () => [...document.querySelectorAll("pre.mermaid")].every((pre) => pre.querySelector("svg")),
          null,
          { timeout: 15000 },
        );
      } catch {
        problem(`${file} (${name})`, "a Mermaid diagram was not drawn within 15 s");
      }
      for (const found of await page.evaluate(cutOff, contentCutOff)) problem(`${file} (${name}, ${width} px)`, found);
      if (name !== "desktop") continue; // what follows does not depend on the width
      for (const found of await page.evaluate(scrollsSideways)) problem(`${file} (${width} px)`, found);
      const sources = await page.evaluate(
        (html) =>
          [...new DOMParser().parseFromString(html, "text/html").querySelectorAll("pre.mermaid")].map((pre) => pre.textContent),
        await response.text(),
      );
      for (const found of await page.evaluate(mermaidErrors, sources)) problem(file, found);
      const { links, images } = await page.evaluate(linksAndImages);
      for (const image of images) {
        if (!image.loaded) problem(file, `picture ${image.src} did not load`);
      }
      const checker = await browser.newPage();
      for (const link of new Set(links)) {
        const [target, anchor] = link.split("#");
        const defined = await idsOf(checker, target);
        if (defined === null) problem(file, `link to ${link}: the page does not exist`);
        else if (anchor && !defined.includes(decodeURIComponent(anchor))) {
          problem(file, `link to ${link}: no such anchor on that page`);
        }
      }
      await checker.close();
    }
    await page.close();
  }

  const page = await browser.newPage({ viewport: widths[0] });
  await page.goto(new URL("index.html", base).href);
  for (const term of searchTerms) {
    if (!(await page.locator("#mdbook-searchbar").isVisible())) {
      await page.click("#mdbook-search-toggle");
    }
    await page.fill("#mdbook-searchbar", term);
    await page.press("#mdbook-searchbar", "End"); // mdBook searches on keyup
    const results = page.locator("#mdbook-searchresults li");
    try {
      await results.first().waitFor({ timeout: 3000 });
      console.log(`search "${term}": ${await results.count()} results`);
    } catch {
      problem("search", `"${term}" finds nothing`);
    }
  }
  await page.close();
} finally {
  await browser.close();
}

console.log(`${pages.length} pages at ${widths.map((w) => `${w.width} px`).join(" and ")}`);
if (problems.length) {
  console.error(`\nBROWSER CHECK FAILED: ${problems.length} problems`);
  for (const p of problems) console.error(`  ${p}`);
  process.exit(1);
}
console.log(
  "every page fits or scrolls (at the desktop width, every code block and table fits), every Mermaid diagram is drawn without error, every internal link and anchor resolves, every key term is found",
);
