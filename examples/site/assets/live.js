// Live reload, as browser-sync and live-server do it, with no extra process: wharf
// publishes every change it sees in a site with `file_events` (on when it serves a
// directory with no configuration) on the hub's `_files` channel, and this page
// reloads when one arrives. Where there is no hub or no such channel, it stays quiet.
"use strict";
(function () {
  if (!("EventSource" in window)) return;
  const events = new EventSource("/hub/_files");
  events.onopen = () => { document.documentElement.dataset.liveReload = "on"; };
  events.onmessage = (e) => {
    const change = JSON.parse(JSON.parse(e.data).data);
    console.log(`wharf: ${change.path} ${change.change}; reloading`);
    location.reload();
  };
  events.onerror = () => {
    if (events.readyState === EventSource.CLOSED) events.close();
  };
})();
