/*
 * Test double of the clock: `new Date()` and `Date.now()` give window.__FIXTURE__.now (ms)
 * plus what window.__tick(ms) added, so that countdowns are the same on every run; __tick also
 * fires the page's interval timers, as if that much time had passed.
 */
(function () {
  "use strict";
  var RealDate = Date;
  var offset = 0;
  var base = window.__FIXTURE__.now;
  function FixedDate() {
    var args = Array.prototype.slice.call(arguments);
    if (!(this instanceof FixedDate)) return new RealDate(base + offset).toString();
    if (args.length === 0) return new RealDate(base + offset);
    return new (Function.prototype.bind.apply(RealDate, [null].concat(args)))();
  }
  FixedDate.prototype = RealDate.prototype;
  FixedDate.now = function () {
    return base + offset;
  };
  FixedDate.parse = RealDate.parse;
  FixedDate.UTC = RealDate.UTC;
  window.Date = FixedDate;
  // The panel's timers, so that a test can move the clock on and let them fire at once.
  var timers = {};
  var realSetInterval = window.setInterval;
  var realClearInterval = window.clearInterval;
  window.setInterval = function (callback, ms) {
    var id = realSetInterval(callback, ms);
    timers[id] = callback;
    return id;
  };
  window.clearInterval = function (id) {
    delete timers[id];
    realClearInterval(id);
  };
  window.__tick = function (ms) {
    offset += ms;
    Object.keys(timers).forEach(function (id) {
      timers[id]();
    });
  };
})();
