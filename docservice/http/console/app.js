// The console's entry point: routes, the live feed, the settings button.

import { recordActivity } from "./activity.js";
import * as blameView from "./blame-view.js";
import * as documentView from "./document-view.js";
import { h, refreshTimes } from "./dom.js";
import { startFeed } from "./feed.js";
import * as historyView from "./history-view.js";
import * as listView from "./list-view.js";
import * as newView from "./new-view.js";
import { parse, route, start } from "./router.js";
import { openSettings, showActor } from "./settings.js";

const notFound = {
  mount(container) {
    document.title = "Not found · docservice";
    container.append(
      h(
        "section",
        { class: "narrow" },
        h("h1", {}, "Nothing here"),
        h("p", {}, h("a", { href: "#/" }, "Back to the documents")),
      ),
    );
  },
};

route("/", listView);
route("/new", newView);
route("/documents/:id", documentView);
route("/documents/:id/history", historyView);
route("/documents/:id/blame", blameView);

/** aria-current on the main navigation's link to this page. */
function markNavigation() {
  const path = parse(location.hash).path;
  for (const link of document.querySelectorAll(".top nav a")) {
    if (parse(link.hash).path === path) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// The skip link moves focus only: following its #main would be a route.
document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  document.getElementById("main").focus();
});
window.addEventListener("hashchange", markNavigation);
markNavigation();
setInterval(refreshTimes, 30_000);
showActor();
document.getElementById("settings-button").addEventListener("click", openSettings);
recordActivity();
startFeed();
start(notFound);
