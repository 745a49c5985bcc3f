// wharf example script: shows the response headers of this page's stylesheet.
fetch("/assets/style.css").then((r) => {
  const p = document.createElement("p");
  p.textContent = "style.css: " + r.status + ", ETag " + r.headers.get("ETag") + ", Cache-Control " + r.headers.get("Cache-Control");
  document.body.appendChild(p);
});
