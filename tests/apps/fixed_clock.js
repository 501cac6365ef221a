/*
 * Test double of the clock: `new Date()` and `Date.now()` give window.__FIXTURE__.now (ms)
 * plus what window.__advance(ms) added, so that countdowns are the same on every run.
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
  window.__advance = function (ms) {
    offset += ms;
  };
})();
