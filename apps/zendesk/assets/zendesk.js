/*
 * The Zendesk side of the SLA panel: reads the summary field, the ticket's tags and the agent's
 * locale and time zone through the Zendesk Apps framework client, shows them with panel.js,
 * and shows them again whenever the field or the tags change. The field's id is the app's
 * setting `summary_field_id` (see docs/apps.md).
 */
(function () {
  "use strict";

  var root = document.getElementById("sla");
  var client = typeof ZAFClient !== "undefined" ? ZAFClient.init() : null;
  if (!client) {
    // Opened outside Zendesk: ZAFClient.init() gives nothing without the framework's frame.
    SlaPanel.message(root, SlaPanel.strings(navigator.language).noClient);
    return;
  }

  var settings = null;

  function resize() {
    client.invoke("resize", { width: "100%", height: Math.ceil(document.body.scrollHeight) + "px" });
  }

  /** The agent's IANA zone: Zendesk gives an object (ianaName) or a name; else the browser's. */
  function zoneCandidates(zone) {
    if (zone && typeof zone === "object") return [zone.ianaName, zone.name];
    return [zone];
  }

  function load() {
    var field = "ticket.customField:custom_field_" + settings.summary_field_id;
    return client.get([field, "ticket.tags", "currentUser.locale", "currentUser.timeZone"]).then(function (data) {
      var t = SlaPanel.strings(data["currentUser.locale"] || navigator.language);
      if (data.errors && data.errors[field]) {
        // Not a field of this account (a wrong id in the settings): not "no summary yet".
        SlaPanel.message(root, t.noField.replace("{f}", "custom_field_" + settings.summary_field_id));
        resize();
        return;
      }
      SlaPanel.show(
        root,
        {
          text: data[field],
          tags: data["ticket.tags"] || [],
          unmappedTag: settings.unmapped_tag || "sla_unmapped",
          locale: data["currentUser.locale"],
          zone: zoneCandidates(data["currentUser.timeZone"]),
        },
        resize
      );
    });
  }

  function fail(error) {
    console.error("sla-connector panel:", error); // in the browser's console for whoever looks
    SlaPanel.message(root, SlaPanel.strings(navigator.language).unreadable + " (" + (error && error.message ? error.message : error) + ")");
    resize();
  }

  client.on("app.registered", function (context) {
    var metadata = context && context.metadata ? Promise.resolve(context.metadata) : client.metadata();
    metadata.then(function (m) {
      start((m && m.settings) || {});
    }, fail);
  });

  function start(installed) {
    settings = installed;
    if (!settings.summary_field_id) {
      SlaPanel.message(root, SlaPanel.strings(navigator.language).setField);
      resize();
      return;
    }
    // The daemon writes the field while the ticket is open; the agent's own edits change tags.
    client.on("ticket.custom_field_" + settings.summary_field_id + ".changed", function () {
      load().catch(fail);
    });
    client.on("ticket.tags.changed", function () {
      load().catch(fail);
    });
    client.on("ticket.updated", function () {
      load().catch(fail);
    });
    load().catch(fail);
  }
})();
