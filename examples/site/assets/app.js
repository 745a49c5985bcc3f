// wharf example script: shows the response headers of this page's stylesheet, and
// which of the setups the page describes sent that Cache-Control.
fetch("/assets/style.css").then((r) => {
  const cc = r.headers.get("Cache-Control");
  const setup = [...document.querySelectorAll("[data-cache-control]")].find((e) => e.textContent === cc);
  const p = document.createElement("p");
  p.textContent = "style.css: " + r.status + ", ETag " + r.headers.get("ETag") + ", Cache-Control " + cc +
    (setup ? " (" + setup.dataset.cacheControl + ")" : "");
  document.body.appendChild(p);
});
