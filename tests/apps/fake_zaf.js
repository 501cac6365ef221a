/*
 * A test double of the Zendesk Apps framework client (ZAFClient), served to the app in place
 * of the vendored SDK by tests/test_apps_browser.py. It answers from window.__FIXTURE__
 * (prepended by the test server): {now, settings, data: {path: value}}, and records what the
 * app asks for. Its calls follow the documented client API: init(), on(), get(), invoke(),
 * metadata(); get() resolves to the values keyed by path plus `errors`.
 */
(function () {
  "use strict";
  var fixture = window.__FIXTURE__;
  var handlers = {};
  var calls = { get: [], invoke: [], on: [] };
  var client = {
    on: function (name, handler) {
      calls.on.push(name);
      (handlers[name] = handlers[name] || []).push(handler);
      if (name === "app.registered") {
        setTimeout(function () {
          handler({ metadata: { settings: fixture.settings }, context: { location: "ticket_sidebar" } });
        }, 0);
      }
    },
    get: function (paths) {
      var list = Array.isArray(paths) ? paths : [paths];
      calls.get.push(list);
      var answer = { errors: {} };
      list.forEach(function (path) {
        if (Object.prototype.hasOwnProperty.call(fixture.data, path)) answer[path] = fixture.data[path];
        else answer.errors[path] = { message: "no such path: " + path };
      });
      return Promise.resolve(answer);
    },
    invoke: function (name, args) {
      calls.invoke.push([name, args]);
      return Promise.resolve({});
    },
    metadata: function () {
      return Promise.resolve({ settings: fixture.settings });
    },
  };
  window.ZAFClient = {
    init: function () {
      return client;
    },
  };
  // For the test: change a value as Zendesk would, and fire the event it fires.
  window.__fake = {
    calls: calls,
    change: function (path, value, event) {
      fixture.data[path] = value;
      (handlers[event] || []).forEach(function (handler) {
        handler(value);
      });
    },
  };
})();
