/*
 * sla-connector's SLA panel: renders the SLA summary the daemon writes into one ticket field
 * (JSON, version 1; see docs/apps.md) for an agent, in the agent's time zone and language.
 *
 * Shared by the Zendesk and the Freshdesk app: each copies this file (apps/copy-panel) and
 * adds a small adapter that reads the field through its helpdesk's client API and calls
 * SlaPanel.show(). No network, no build step, no dependency: a plain script for any browser
 * the helpdesks support.
 *
 * States: a target's state is the daemon's, moved on by the clock here: a running target
 * whose at-risk instant has passed is shown at risk, one whose due instant has passed is shown
 * breached (the daemon tags it on its next pass). Paused, achieved and best-effort targets do
 * not move by themselves.
 */
(function (global) {
  "use strict";

  var VERSION = 1;
  var TICK_MS = 30 * 1000;

  var STRINGS = {
    en: {
      title: "SLA",
      loading: "Reading the SLA summary…",
      none: "No SLA summary yet.",
      noneWhy: "sla-connector writes it on its next pass over this ticket (usually within a minute or two of a change).",
      unmapped: "No contract applies to this ticket.",
      unmappedWhy: "It is tagged {tag}: its organization, plan or severity is missing or not in the mapping. The connector's note on the ticket says which.",
      unreadable: "The SLA summary in this ticket could not be read.",
      newer: "This summary was written by a newer sla-connector (summary version {v}). Update this app.",
      noClient: "This page runs inside the helpdesk's ticket sidebar only.",
      noField: "The app's summary field ({f}) is not a field of this ticket. Check the app's settings.",
      setField: "Set the app's summary field in its settings.",
      part: "{n} due {t}",
      plan: "plan",
      severity: "severity",
      submitted: "submitted as {s}",
      dueIn: "due in {d}",
      overdue: "overdue by {d}",
      dueAt: "due {t}",
      riskFrom: "at risk from {t}",
      metAt: "met {t}",
      owed: "{d} still owed when the clock resumes",
      pausedSoFar: "paused {d} in all",
      noDue: "no due time",
      business: "business time",
      calendar: "Business hours: {c}",
      quotas: "Quotas",
      quotaOf: "{n} of {l}",
      overLimit: "over the limit",
      explanation: "Explanation",
      cut: "Part of the summary was left out (too long for the field).",
      times: "Times shown in {z}",
      states: {
        running: "running",
        at_risk: "at risk",
        breached: "breached",
        paused: "paused",
        achieved: "achieved",
        best_effort: "best effort",
      },
      entitlements: {
        included: "Covered by the plan",
        over_quota: "Over the plan's quota: best effort, or billed, as the contract says",
        grace: "A grace call: answered once more although the contract does not cover it",
        pay_per_incident: "Not covered: offered as a paid incident",
        not_eligible: "Not covered by this contract",
      },
      targets: {
        first_response: "First response",
        next_response: "Next response",
        resolution: "Resolution",
        workaround: "Workaround",
        delivery: "Delivery",
      },
    },
    fr: {
      title: "SLA",
      loading: "Lecture du résumé SLA…",
      none: "Pas encore de résumé SLA.",
      noneWhy: "sla-connector l'écrit à son prochain passage sur ce ticket (en général une à deux minutes après un changement).",
      unmapped: "Aucun contrat ne s'applique à ce ticket.",
      unmappedWhy: "Il porte l'étiquette {tag} : son organisation, son plan ou sa sévérité manque ou n'est pas dans la correspondance. La note du connecteur sur le ticket dit lequel.",
      unreadable: "Le résumé SLA de ce ticket est illisible.",
      newer: "Ce résumé vient d'un sla-connector plus récent (version {v} du résumé). Mettez cette application à jour.",
      noClient: "Cette page ne fonctionne que dans la barre latérale du ticket.",
      noField: "Le champ de résumé de l'application ({f}) n'est pas un champ de ce ticket. Vérifiez les réglages de l'application.",
      setField: "Indiquez le champ de résumé dans les réglages de l'application.",
      part: "{n} à rendre {t}",
      plan: "plan",
      severity: "sévérité",
      submitted: "soumis en {s}",
      dueIn: "échéance dans {d}",
      overdue: "en retard de {d}",
      dueAt: "échéance {t}",
      riskFrom: "à risque dès {t}",
      metAt: "tenu {t}",
      owed: "encore {d} dus à la reprise",
      pausedSoFar: "{d} en pause au total",
      noDue: "pas d'échéance",
      business: "heures ouvrées",
      calendar: "Heures ouvrées : {c}",
      quotas: "Quotas",
      quotaOf: "{n} sur {l}",
      overLimit: "au-delà de la limite",
      explanation: "Explication",
      cut: "Une partie du résumé a été omise (trop longue pour le champ).",
      times: "Heures affichées en {z}",
      states: {
        running: "en cours",
        at_risk: "à risque",
        breached: "dépassé",
        paused: "en pause",
        achieved: "tenu",
        best_effort: "au mieux",
      },
      entitlements: {
        included: "Couvert par le plan",
        over_quota: "Au-delà du quota du plan : au mieux, ou facturé, selon le contrat",
        grace: "Un appel de grâce : traité une fois de plus bien que hors contrat",
        pay_per_incident: "Non couvert : proposé comme incident payant",
        not_eligible: "Non couvert par ce contrat",
      },
      targets: {
        first_response: "Première réponse",
        next_response: "Réponse suivante",
        resolution: "Résolution",
        workaround: "Contournement",
        delivery: "Livraison",
      },
    },
    de: {
      title: "SLA",
      loading: "SLA-Zusammenfassung wird gelesen…",
      none: "Noch keine SLA-Zusammenfassung.",
      noneWhy: "sla-connector schreibt sie beim nächsten Durchlauf über dieses Ticket (meist ein bis zwei Minuten nach einer Änderung).",
      unmapped: "Für dieses Ticket gilt kein Vertrag.",
      unmappedWhy: "Es trägt den Tag {tag}: Organisation, Plan oder Schweregrad fehlt oder steht nicht in der Zuordnung. Die Notiz des Connectors am Ticket sagt, was.",
      unreadable: "Die SLA-Zusammenfassung dieses Tickets ist nicht lesbar.",
      newer: "Diese Zusammenfassung stammt von einem neueren sla-connector (Version {v}). Bitte die App aktualisieren.",
      noClient: "Diese Seite läuft nur in der Ticket-Seitenleiste des Helpdesks.",
      noField: "Das Zusammenfassungsfeld der App ({f}) ist kein Feld dieses Tickets. Bitte die Einstellungen der App prüfen.",
      setField: "Bitte das Zusammenfassungsfeld in den Einstellungen der App angeben.",
      part: "{n} fällig {t}",
      plan: "Plan",
      severity: "Schweregrad",
      submitted: "eingereicht als {s}",
      dueIn: "fällig in {d}",
      overdue: "überfällig seit {d}",
      dueAt: "fällig {t}",
      riskFrom: "gefährdet ab {t}",
      metAt: "erfüllt {t}",
      owed: "noch {d} offen, wenn die Uhr weiterläuft",
      pausedSoFar: "insgesamt {d} pausiert",
      noDue: "keine Frist",
      business: "Geschäftszeit",
      calendar: "Geschäftszeiten: {c}",
      quotas: "Kontingente",
      quotaOf: "{n} von {l}",
      overLimit: "über dem Limit",
      explanation: "Erklärung",
      cut: "Ein Teil der Zusammenfassung fehlt (zu lang für das Feld).",
      times: "Zeiten angezeigt in {z}",
      states: {
        running: "läuft",
        at_risk: "gefährdet",
        breached: "verletzt",
        paused: "pausiert",
        achieved: "erfüllt",
        best_effort: "nach Möglichkeit",
      },
      entitlements: {
        included: "Im Plan enthalten",
        over_quota: "Über dem Kontingent des Plans: nach Möglichkeit oder berechnet, wie der Vertrag sagt",
        grace: "Ein Kulanzfall: noch einmal bearbeitet, obwohl der Vertrag ihn nicht deckt",
        pay_per_incident: "Nicht gedeckt: als bezahlter Einzelfall angeboten",
        not_eligible: "Nicht durch diesen Vertrag gedeckt",
      },
      targets: {
        first_response: "Erste Antwort",
        next_response: "Nächste Antwort",
        resolution: "Lösung",
        workaround: "Umgehung",
        delivery: "Lieferung",
      },
    },
  };

  function own(table, key) {
    return table && Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;
  }

  function language(locale) {
    var base = String(locale || "en").toLowerCase().split(/[-_]/)[0];
    return own(STRINGS, base) ? base : "en";
  }

  /** The strings for a locale such as "fr-CA" or "de", English when we have none. */
  function strings(locale) {
    return STRINGS[language(locale)];
  }

  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (_, key) {
      return key in values ? String(values[key]) : "{" + key + "}";
    });
  }

  /** A usable IANA zone: the first candidate this browser knows, else the browser's own. */
  function resolveZone(candidates) {
    for (var i = 0; i < candidates.length; i++) {
      var name = candidates[i];
      if (typeof name !== "string" || !name) continue;
      try {
        return new Intl.DateTimeFormat("en", { timeZone: name }).resolvedOptions().timeZone;
      } catch (e) {
        // not an IANA name (Freshdesk gives Rails names such as "Eastern Time (US & Canada)")
      }
    }
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  }

  /**
   * The locale dates and spans are written in: the agent's when the panel has its language
   * (so "fr-CA" keeps Canadian dates), else English, so that a line is in one language.
   */
  function resolveLocale(locale) {
    var wanted = language(locale) === "en" && !/^en\b/i.test(String(locale)) ? "en" : locale;
    try {
      return Intl.DateTimeFormat.supportedLocalesOf([String(wanted)])[0] || "en";
    } catch (e) {
      return "en";
    }
  }

  /**
   * Reads the field's text: {kind: "summary", summary} or {kind: "none" | "unreadable" |
   * "newer", ...}.
   */
  function parse(text) {
    if (text === null || text === undefined || String(text).trim() === "") {
      return { kind: "none" };
    }
    var summary;
    try {
      summary = JSON.parse(String(text));
    } catch (e) {
      return { kind: "unreadable" };
    }
    if (!summary || typeof summary !== "object" || typeof summary.v !== "number") {
      return { kind: "unreadable" };
    }
    if (summary.v > VERSION) return { kind: "newer", v: summary.v };
    if (!Array.isArray(summary.targets)) return { kind: "unreadable" };
    return { kind: "summary", summary: clean(summary) };
  }

  function nonEmpty(value) {
    return typeof value === "string" && value ? value : undefined;
  }

  function number(value) {
    return typeof value === "number" && isFinite(value) ? value : undefined;
  }

  /** The summary with only what the panel can show: a malformed entry is left out, not shown
   * half or allowed to throw. */
  function clean(s) {
    var targets = s.targets.filter(function (t) {
      return t && typeof t === "object" && nonEmpty(t.name) && nonEmpty(t.state);
    });
    var quotas = (Array.isArray(s.quotas) ? s.quotas : []).filter(function (q) {
      return q && typeof q === "object" && nonEmpty(q.quota) && number(q.count) !== undefined && number(q.limit) !== undefined;
    });
    var lines = (Array.isArray(s.lines) ? s.lines : []).filter(function (l) {
      return typeof l === "string";
    });
    return {
      title: nonEmpty(s.title),
      contract: nonEmpty(s.contract),
      plan: nonEmpty(s.plan),
      severity: nonEmpty(s.severity),
      submitted: nonEmpty(s.submitted),
      entitlement: nonEmpty(s.entitlement),
      calendar: nonEmpty(s.calendar),
      cut: s.cut === true,
      targets: targets.map(function (t) {
        return {
          name: t.name,
          state: t.state,
          label: nonEmpty(t.label),
          due: nonEmpty(t.due),
          at_risk_at: nonEmpty(t.at_risk_at),
          achieved_at: nonEmpty(t.achieved_at),
          owed_seconds: number(t.owed_seconds),
          paused_seconds: number(t.paused_seconds),
          basis: nonEmpty(t.basis),
          parts: (Array.isArray(t.parts) ? t.parts : []).filter(function (p) {
            return p && typeof p === "object" && number(p.quantity) !== undefined && nonEmpty(p.due);
          }),
        };
      }),
      quotas: quotas,
      lines: lines,
    };
  }

  function instant(text) {
    if (!text) return null;
    var ms = Date.parse(text);
    return isNaN(ms) ? null : ms;
  }

  /** A target's state at `now`: the daemon's, moved on by the clock where it moves by itself. */
  function stateAt(target, now) {
    var state = target.state;
    var due = instant(target.due);
    var risk = instant(target.at_risk_at);
    // Breached once past due, as the daemon says it: at the due instant itself, still due.
    if ((state === "running" || state === "at_risk") && due !== null && now > due) {
      return "breached";
    }
    if (state === "running" && risk !== null && now >= risk) return "at_risk";
    return state;
  }

  /** "3 h 12 min", "2 d 4 h", "45 s": two units at most, in the locale's words where it has them. */
  function span(ms, locale) {
    var seconds = Math.max(0, Math.round(Math.abs(ms) / 1000));
    var units = [
      ["days", 86400],
      ["hours", 3600],
      ["minutes", 60],
      ["seconds", 1],
    ];
    var parts = {};
    var shown = 0;
    for (var i = 0; i < units.length && shown < 2; i++) {
      var n = Math.floor(seconds / units[i][1]);
      if (n > 0 || (shown === 0 && units[i][0] === "seconds")) {
        parts[units[i][0]] = n;
        seconds -= n * units[i][1];
        shown += 1;
      } else if (shown > 0) {
        break; // "2 d 0 h 5 min" reads as "2 d"
      }
    }
    if (parts.days === undefined && parts.hours === undefined && parts.minutes !== undefined) {
      delete parts.seconds; // "12 min", not "12 min 5 s"
    }
    if (typeof Intl.DurationFormat === "function") {
      // A zero unit is left out by Intl ("" for 0 s): seconds are always shown when alone.
      var options = parts.seconds !== undefined ? { style: "narrow", secondsDisplay: "always" } : { style: "narrow" };
      var written = new Intl.DurationFormat(locale, options).format(parts);
      if (written) return written;
    }
    var short = { days: "d", hours: "h", minutes: "min", seconds: "s" };
    return Object.keys(parts)
      .map(function (k) {
        return parts[k] + " " + short[k];
      })
      .join(" ");
  }

  /** "Tue 09:15 PST" within the coming week, "Tue 3 Mar 09:15 PST" further off or past. */
  function when(ms, now, locale, zone) {
    var near = Math.abs(ms - now) < 6 * 86400 * 1000;
    var options = {
      timeZone: zone,
      weekday: "short",
      hour: "2-digit",
      minute: "2-digit",
      timeZoneName: "short",
    };
    if (!near) {
      options.day = "numeric";
      options.month = "short";
    }
    return new Intl.DateTimeFormat(locale, options).format(new Date(ms));
  }

  function words(name) {
    var text = String(name).replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function targetView(target, now, t, locale, zone) {
    var state = stateAt(target, now);
    var box = el("section", "sla-target sla-" + state.replace("_", "-"));
    box.setAttribute("data-state", state);
    var head = el("div", "sla-target-head");
    // The contract's own label (in the contract's language) when it has one.
    var name = target.label || own(t.targets, target.name) || words(target.name);
    head.appendChild(el("span", "sla-target-name", name));
    head.appendChild(el("span", "sla-badge", own(t.states, state) || words(state)));
    box.appendChild(head);

    var due = instant(target.due);
    var main;
    var detail = [];
    if (state === "paused") {
      main = target.owed_seconds !== undefined ? fill(t.owed, { d: span(target.owed_seconds * 1000, locale) }) : t.states.paused;
    } else if (state === "best_effort") {
      main = t.noDue;
    } else if (state === "achieved") {
      var met = instant(target.achieved_at);
      main = met !== null ? fill(t.metAt, { t: when(met, now, locale, zone) }) : t.states.achieved;
      if (due !== null) detail.push(fill(t.dueAt, { t: when(due, now, locale, zone) }));
    } else if (due === null) {
      main = t.noDue;
    } else if (now > due) {
      main = fill(t.overdue, { d: span(now - due, locale) });
      detail.push(fill(t.dueAt, { t: when(due, now, locale, zone) }));
    } else {
      main = fill(t.dueIn, { d: span(due - now, locale) });
      detail.push(when(due, now, locale, zone));
      var risk = instant(target.at_risk_at);
      if (state === "running" && risk !== null) {
        detail.push(fill(t.riskFrom, { t: when(risk, now, locale, zone) }));
      }
    }
    box.appendChild(el("div", "sla-when", main));
    if (detail.length) box.appendChild(el("div", "sla-detail", detail.join(" · ")));
    // An order split by capacity: each share and its own due time (the first is shown above).
    target.parts.forEach(function (part) {
      var partDue = instant(part.due);
      if (partDue === null) return;
      box.appendChild(el("div", "sla-detail sla-part", fill(t.part, { n: part.quantity, t: when(partDue, now, locale, zone) })));
    });
    if (target.paused_seconds) {
      box.appendChild(el("div", "sla-detail", fill(t.pausedSoFar, { d: span(target.paused_seconds * 1000, locale) })));
    }
    if (target.basis) box.appendChild(el("div", "sla-basis", target.basis));
    return box;
  }

  function quotaView(quota, t) {
    var row = el("div", "sla-quota" + (quota.fits === false ? " sla-over" : ""));
    var label = el("div", "sla-quota-label");
    label.appendChild(el("span", "sla-quota-name", quota.label || words(quota.quota)));
    var figure = fill(t.quotaOf, { n: quota.count, l: quota.limit });
    if (quota.fits === false) figure += " · " + t.overLimit;
    label.appendChild(el("span", "sla-quota-figure", figure));
    row.appendChild(label);
    var bar = el("div", "sla-bar");
    bar.setAttribute("role", "meter");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", String(quota.limit));
    bar.setAttribute("aria-valuenow", String(quota.count));
    var fill_ = el("div", "sla-bar-fill");
    var share = quota.limit > 0 ? Math.min(1, quota.count / quota.limit) : 1;
    fill_.style.width = Math.round(share * 100) + "%";
    bar.appendChild(fill_);
    row.appendChild(bar);
    if (quota.period && quota.period !== "lifetime") {
      row.appendChild(el("div", "sla-detail", quota.period));
    }
    return row;
  }

  function messageView(className, headline, why) {
    var box = el("div", "sla-message " + className);
    box.appendChild(el("p", "sla-headline", headline));
    if (why) box.appendChild(el("p", "sla-detail", why));
    return box;
  }

  /**
   * Renders into `root`. `view`: {text: the field's text (or null), tags: the ticket's tags,
   * unmappedTag, locale, zone: IANA zone candidates, open: whether the explanation is open}.
   * Returns what was shown: "summary", "none", "unmapped", "unreadable", "newer".
   */
  function render(root, view, now) {
    var locale = resolveLocale(view.locale || navigator.language || "en");
    var t = strings(locale);
    var zone = resolveZone(view.zone || []);
    var unmappedTag = view.unmappedTag || "sla_unmapped";
    var tags = view.tags || [];
    var parsed = parse(view.text);
    var kind = parsed.kind;
    // The tag wins over an older summary: a ticket no contract applies to any more keeps the
    // field the connector last wrote.
    if (tags.indexOf(unmappedTag) >= 0) kind = "unmapped";
    root.textContent = "";
    root.setAttribute("data-kind", kind);
    root.setAttribute("lang", locale);
    if (kind === "unmapped") {
      root.appendChild(messageView("sla-unmapped", t.unmapped, fill(t.unmappedWhy, { tag: unmappedTag })));
      return kind;
    }
    if (kind === "none") {
      root.appendChild(messageView("sla-none", t.none, t.noneWhy));
      return kind;
    }
    if (kind === "unreadable") {
      root.appendChild(messageView("sla-problem", t.unreadable));
      return kind;
    }
    if (kind === "newer") {
      root.appendChild(messageView("sla-problem", fill(t.newer, { v: parsed.v })));
      return kind;
    }
    var s = parsed.summary;
    var header = el("header", "sla-header");
    header.appendChild(el("div", "sla-title", s.title || words(s.contract || "")));
    var facts = [];
    if (s.plan) facts.push(t.plan + " " + s.plan);
    if (s.severity) {
      var sev = t.severity + " " + s.severity;
      if (s.submitted && s.submitted !== s.severity) sev += " (" + fill(t.submitted, { s: s.submitted }) + ")";
      facts.push(sev);
    }
    if (facts.length) header.appendChild(el("div", "sla-facts", facts.join(" · ")));
    if (s.entitlement) {
      var entitled = el("div", "sla-entitlement sla-entitlement-" + s.entitlement.replace(/_/g, "-"));
      entitled.textContent = own(t.entitlements, s.entitlement) || words(s.entitlement);
      header.appendChild(entitled);
    }
    root.appendChild(header);

    s.targets.forEach(function (target) {
      root.appendChild(targetView(target, now, t, locale, zone));
    });
    if (s.calendar) root.appendChild(el("div", "sla-detail sla-calendar", fill(t.calendar, { c: s.calendar })));

    if (s.quotas && s.quotas.length) {
      var quotas = el("section", "sla-quotas");
      quotas.appendChild(el("h3", null, t.quotas));
      s.quotas.forEach(function (q) {
        quotas.appendChild(quotaView(q, t));
      });
      root.appendChild(quotas);
    }
    if (s.lines && s.lines.length) {
      var more = el("details", "sla-explanation");
      if (view.open) more.open = true;
      more.appendChild(el("summary", null, t.explanation));
      s.lines.forEach(function (line) {
        more.appendChild(el("p", null, line));
      });
      root.appendChild(more);
    }
    if (s.cut) root.appendChild(el("div", "sla-detail", t.cut));
    root.appendChild(el("footer", "sla-footer", fill(t.times, { z: zone })));
    return kind;
  }

  /**
   * Shows `view` in `root` and keeps the countdowns current: re-rendered every 30 s and at
   * each call (the adapters call again when the field changes). `onRender(kind)` runs after
   * each render (the Zendesk app resizes its frame there). `clock`: milliseconds now.
   */
  function show(root, view, onRender, clock) {
    var now = clock || Date.now;
    if (root.__slaTimer) clearInterval(root.__slaTimer);
    var draw = function () {
      var explanation = root.querySelector("details.sla-explanation");
      var open = explanation ? explanation.open : view.open;
      var kind = render(root, Object.assign({}, view, { open: open }), now());
      if (onRender) onRender(kind);
      return kind;
    };
    root.__slaOnRender = onRender;
    if (!root.__slaToggle) {
      // Opening the explanation changes the height: the Zendesk frame follows it.
      root.__slaToggle = true;
      root.addEventListener(
        "toggle",
        function () {
          if (root.__slaOnRender) root.__slaOnRender(root.getAttribute("data-kind"));
        },
        true
      );
    }
    root.__slaTimer = setInterval(draw, TICK_MS);
    return draw();
  }

  function message(root, text) {
    if (root.__slaTimer) clearInterval(root.__slaTimer);
    root.__slaTimer = null;
    root.textContent = "";
    root.setAttribute("data-kind", "message");
    root.appendChild(messageView("sla-none", text));
  }

  global.SlaPanel = {
    VERSION: VERSION,
    parse: parse,
    render: render,
    show: show,
    message: message,
    stateAt: stateAt,
    span: span,
    strings: strings,
  };
})(window);
