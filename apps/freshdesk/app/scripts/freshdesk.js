/*
 * The Freshdesk side of the SLA panel: reads the summary field, the ticket's tags and the
 * agent's language and time zone through the Freshworks client (platform 3.0), shows them with
 * panel.js, and again when the app is opened and when the agent updates the ticket. The field
 * is the installation parameter `summary_field` (see docs/apps.md).
 */
(function () {
  "use strict";

  var root = document.getElementById("sla");

  if (typeof app === "undefined" || !app.initialized) {
    // Opened outside Freshdesk: the platform's client script was not there.
    SlaPanel.message(root, SlaPanel.strings(navigator.language).noClient);
    return;
  }

  /**
   * The field's value ({found: false} when the ticket has no such field); front-end data may
   * suffix custom field names with the account id.
   */
  function fieldValue(fields, name) {
    if (!fields) return { found: false };
    if (Object.prototype.hasOwnProperty.call(fields, name)) return { found: true, value: fields[name] };
    var suffixed = new RegExp("^" + name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "_\\d+$");
    for (var key in fields) {
      if (suffixed.test(key)) return { found: true, value: fields[key] };
    }
    return { found: false };
  }

  function start(client) {
    var params = {};

    function resize() {
      client.instance.resize({ height: Math.ceil(document.body.scrollHeight) + "px" });
    }

    function fail(error) {
      console.error("sla-connector panel:", error); // in the browser's console for whoever looks
      var why = error && error.message ? error.message : JSON.stringify(error);
      SlaPanel.message(root, SlaPanel.strings(navigator.language).unreadable + " (" + why + ")");
      resize();
    }

    function load() {
      return Promise.all([client.data.get("ticket"), client.data.get("loggedInUser")]).then(function (data) {
        var ticket = data[0].ticket || {};
        var contact = (data[1].loggedInUser && data[1].loggedInUser.contact) || {};
        var name = params.summary_field || "cf_sla_summary";
        var field = fieldValue(ticket.custom_fields, name);
        if (!field.found) {
          // Not a field of this account (a wrong name in the settings): not "no summary yet".
          SlaPanel.message(root, SlaPanel.strings(contact.language || navigator.language).noField.replace("{f}", name));
          resize();
          return;
        }
        SlaPanel.show(
          root,
          {
            text: field.value,
            tags: ticket.tags || [],
            unmappedTag: params.unmapped_tag || "sla_unmapped",
            locale: contact.language,
            // Freshdesk names zones the Rails way ("Eastern Time (US & Canada)"): such a name is
            // not an IANA zone, and the browser's own zone is used instead.
            zone: [contact.time_zone],
          },
          resize
        );
      });
    }

    function reload() {
      load().catch(fail);
    }

    client.iparams.get().then(function (installed) {
      params = installed || {};
      client.events.on("app.activated", reload);
      // Without intercept: the panel only reads, and reads again once the agent's update is in.
      client.events.on("ticket.propertiesUpdated", reload);
      reload();
    }, fail);
  }

  app.initialized().then(start, function (error) {
    SlaPanel.message(root, String(error));
  });
})();
