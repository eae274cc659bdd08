/* Tables on a phone (issue 24): a Markdown or pandas table too wide for the column (chapter 1's
   "every layer by hand" with its formulas, chapter 8's ladder) becomes one card per row at
   600 px and below, each cell labelled with its column's header (course.css,
   "table--stacked"). Tables that fit stay tables; without JavaScript a wide one scrolls in its
   own box. */
(function () {
  "use strict";
  const PHONE = window.matchMedia("(max-width: 600px)");

  function label(table) {
    const heads = [...table.querySelectorAll("thead tr:first-child th")]
      .map((th) => th.textContent.trim());
    for (const row of table.querySelectorAll("tbody tr")) {
      [...row.children].forEach((cell, i) => {
        if (heads[i]) cell.dataset.label = heads[i];
      });
    }
  }

  function restack() {
    const tables = document.querySelectorAll(
      ".bd-article table:is(.table, .dataframe)");
    for (const table of tables) table.classList.remove("table--stacked");
    if (!PHONE.matches) return;
    for (const table of tables) {
      const room = table.parentElement.clientWidth;
      if (table.tHead && table.scrollWidth > room + 1) {
        label(table);
        table.classList.add("table--stacked");
      }
    }
  }

  let pending = 0;
  function later() {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(restack);
  }
  window.addEventListener("resize", later);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", restack);
  } else {
    restack();
  }
  // Typeset maths changes a table's width: measure again once MathJax is done.
  window.addEventListener("load", () => {
    const mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) mj.startup.promise.then(later);
    else later();
  });
})();
