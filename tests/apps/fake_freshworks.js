/*
 * A test double of the Freshworks platform 3.0 client (`app.initialized()`), put where the
 * platform puts its client script ({{{appclient}}}) by tests/test_apps_browser.py. It answers
 * from window.__FIXTURE__: {now, iparams, data: {ticket: {...}, loggedInUser: {...}}}; its calls
 * follow the documented methods: data.get(name) resolves to {name: value}, iparams.get(),
 * events.on(name, callback), instance.resize({height}).
 */
(function () {
  "use strict";
  var fixture = window.__FIXTURE__;
  var handlers = {};
  var calls = { data: [], resize: [], events: [] };
  var client = {
    data: {
      get: function (name) {
        calls.data.push(name);
        if (!Object.prototype.hasOwnProperty.call(fixture.data, name)) {
          return Promise.reject({ status: 404, message: "no such data: " + name });
        }
        var answer = {};
        answer[name] = JSON.parse(JSON.stringify(fixture.data[name]));
        return Promise.resolve(answer);
      },
    },
    iparams: {
      get: function () {
        return Promise.resolve(fixture.iparams);
      },
    },
    events: {
      on: function (name, callback) {
        calls.events.push(name);
        (handlers[name] = handlers[name] || []).push(callback);
      },
    },
    instance: {
      resize: function (size) {
        calls.resize.push(size);
        return Promise.resolve();
      },
    },
  };
  window.app = {
    initialized: function () {
      return Promise.resolve(client);
    },
  };
  window.__fake = {
    calls: calls,
    fire: function (name, data) {
      (handlers[name] || []).forEach(function (callback) {
        callback({ helper: { getData: function () { return data; } } });
      });
    },
    setTicket: function (ticket) {
      fixture.data.ticket = ticket;
    },
  };
})();
