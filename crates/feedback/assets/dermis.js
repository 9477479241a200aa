/*
 * Dermis quiz widget: <dermis-quiz quiz="KEY" write-key="WK" api="https://host" anonymous-id="...">
 * A web component with no dependency. It fetches the quiz (GET /v1/quizzes/KEY), counts a view
 * (POST .../impressions), shows one question at a time following the quiz's branching, posts the
 * answers (POST .../responses, the write key as the HTTP Basic user) and fires
 * `dermis:quiz-completed` (detail: the server's receipt) on the element. Optional attributes:
 * user-id, product-id (a post-purchase survey's product).
 */
(function () {
  "use strict";
  if (typeof window === "undefined" || !window.customElements || window.customElements.get("dermis-quiz")) return;

  var STYLE =
    ":host{display:block;font-family:system-ui,sans-serif;max-width:32rem;color:#1d1d1f}" +
    ".dq{border:1px solid #d0d0d7;border-radius:.75rem;padding:1.25rem;background:#fff}" +
    "h2{font-size:1.2rem;margin:0 0 .75rem}" +
    "fieldset{border:0;margin:0;padding:0}" +
    "legend{font-weight:600;margin-bottom:.5rem;padding:0}" +
    "label.opt{display:flex;gap:.5rem;align-items:center;padding:.45rem .6rem;margin:.3rem 0;border:1px solid #e2e2e8;border-radius:.5rem;cursor:pointer}" +
    "label.opt:focus-within{outline:2px solid #6b4eff}" +
    "textarea{width:100%;min-height:4rem;box-sizing:border-box}" +
    ".nav{display:flex;justify-content:space-between;margin-top:1rem}" +
    "button{font:inherit;padding:.5rem 1rem;border-radius:.5rem;border:1px solid #6b4eff;background:#6b4eff;color:#fff;cursor:pointer}" +
    "button.secondary{background:#fff;color:#6b4eff}" +
    "button[disabled]{opacity:.5;cursor:default}" +
    ".error{color:#b00020;margin-top:.5rem}" +
    ".progress{font-size:.85rem;color:#666;margin-bottom:.5rem}";

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k];
      else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }

  function randomId() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return "dq-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }

  function anonymousId() {
    try {
      var stored = window.localStorage.getItem("dermis.anonymous_id");
      if (stored) return stored;
      var id = randomId();
      window.localStorage.setItem("dermis.anonymous_id", id);
      return id;
    } catch (e) {
      return randomId();
    }
  }

  class DermisQuiz extends HTMLElement {
    connectedCallback() {
      if (this._root) return;
      this._root = this.attachShadow({ mode: "open" });
      this._answers = {};
      this._path = [];
      this._messageId = randomId();
      this._load();
    }

    _api(path) {
      var base = (this.getAttribute("api") || "").replace(/\/+$/, "");
      return base + path;
    }

    _auth() {
      return "Basic " + window.btoa((this.getAttribute("write-key") || "") + ":");
    }

    _anonymousId() {
      return this.getAttribute("anonymous-id") || anonymousId();
    }

    _render(children) {
      this._root.textContent = "";
      this._root.appendChild(el("style", { text: STYLE }));
      var box = el("div", { class: "dq", role: "form", "aria-live": "polite" }, children);
      if (this._quiz) box.setAttribute("aria-label", this._quiz.title);
      this._root.appendChild(box);
      var first = box.querySelector("input,textarea,button");
      if (first && this._focus) first.focus();
    }

    _load() {
      var self = this;
      var key = encodeURIComponent(this.getAttribute("quiz") || "");
      this._render([el("p", { text: "Loading…" })]);
      fetch(this._api("/v1/quizzes/" + key))
        .then(function (r) {
          if (!r.ok) throw new Error("the quiz could not be loaded (" + r.status + ")");
          return r.json();
        })
        .then(function (quiz) {
          self._quiz = quiz;
          self._path = [0];
          self._show();
          fetch(self._api("/v1/quizzes/" + key + "/impressions"), {
            method: "POST",
            headers: { "content-type": "application/json", authorization: self._auth() },
            body: JSON.stringify({ anonymous_id: self._anonymousId() }),
          }).catch(function () {});
        })
        .catch(function (e) {
          self._render([el("p", { class: "error", role: "alert", text: e.message })]);
        });
    }

    _current() {
      return this._quiz.questions[this._path[this._path.length - 1]];
    }

    /* The index of the question after `q` given its answer (the quiz's branching). */
    _nextIndex(q) {
      var qs = this._quiz.questions;
      var here = qs.indexOf(q);
      var a = this._answers[q.id];
      if (q.type === "single" && a && q.next && q.next[a.option]) {
        for (var i = here + 1; i < qs.length; i++) if (qs[i].id === q.next[a.option]) return i;
      }
      return here + 1;
    }

    _readAnswer(q, form) {
      if (q.type === "single") {
        var c = form.querySelector("input:checked");
        return c ? { question: q.id, option: c.value } : null;
      }
      if (q.type === "multiple") {
        var cs = Array.prototype.map.call(form.querySelectorAll("input:checked"), function (i) { return i.value; });
        return cs.length ? { question: q.id, options: cs } : null;
      }
      if (q.type === "rating") {
        var r = form.querySelector("input:checked");
        return r ? { question: q.id, rating: parseInt(r.value, 10) } : null;
      }
      var t = form.querySelector("textarea").value;
      return t.trim() ? { question: q.id, text: t } : null;
    }

    _show(error) {
      var self = this;
      var q = this._current();
      var name = "q-" + q.id;
      var form = el("form", { novalidate: "" });
      var fieldset = el("fieldset", {}, [el("legend", { id: name + "-legend", text: q.text + (q.required ? " *" : "") })]);
      var previous = this._answers[q.id] || {};
      var choices = q.type === "rating"
        ? [1, 2, 3, 4, 5].map(function (n) { return { id: String(n), label: String(n) }; })
        : q.options || [];
      if (q.type === "text") {
        var ta = el("textarea", { name: name, "aria-labelledby": name + "-legend", maxlength: "2000" });
        ta.value = previous.text || "";
        fieldset.appendChild(ta);
      } else {
        if (q.type === "rating") fieldset.setAttribute("role", "radiogroup");
        choices.forEach(function (o) {
          var input = el("input", {
            type: q.type === "multiple" ? "checkbox" : "radio",
            name: name,
            value: o.id,
            id: name + "-" + o.id,
          });
          if (previous.option === o.id || (previous.options || []).indexOf(o.id) >= 0 || String(previous.rating) === o.id)
            input.checked = true;
          fieldset.appendChild(el("label", { class: "opt", for: name + "-" + o.id }, [input, el("span", { text: o.label })]));
        });
      }
      form.appendChild(fieldset);
      var last = this._nextIndex(q) >= this._quiz.questions.length;
      var back = el("button", { type: "button", class: "secondary", text: "Back" });
      if (this._path.length < 2) back.setAttribute("disabled", "");
      var next = el("button", { type: "submit", text: last ? "Submit" : "Next" });
      form.appendChild(el("div", { class: "nav" }, [back, next]));
      if (error) form.appendChild(el("p", { class: "error", role: "alert", text: error }));
      back.addEventListener("click", function () {
        self._path.pop();
        self._focus = true;
        self._show();
      });
      form.addEventListener("change", function () {
        var a = self._readAnswer(q, form);
        if (a) self._answers[q.id] = a;
        else delete self._answers[q.id];
        var isLast = self._nextIndex(q) >= self._quiz.questions.length;
        next.textContent = isLast ? "Submit" : "Next";
      });
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var a = self._readAnswer(q, form);
        if (!a && q.required) return self._show("Please answer this question.");
        if (a) self._answers[q.id] = a;
        else delete self._answers[q.id];
        var n = self._nextIndex(q);
        self._focus = true;
        if (n >= self._quiz.questions.length) return self._submit();
        self._path.push(n);
        self._show();
      });
      var progress = el("p", { class: "progress", text: "Question " + this._path.length });
      this._render([el("h2", { text: this._quiz.title }), progress, form]);
    }

    _submit() {
      var self = this;
      var qs = this._quiz.questions;
      var answers = this._path
        .map(function (i) { return self._answers[qs[i].id]; })
        .filter(function (a) { return !!a; });
      var body = { anonymous_id: this._anonymousId(), answers: answers, message_id: this._messageId };
      if (this.getAttribute("user-id")) body.user_id = this.getAttribute("user-id");
      if (this.getAttribute("product-id")) body.context = { product_id: this.getAttribute("product-id") };
      this._render([el("p", { text: "Sending…" })]);
      fetch(this._api("/v1/quizzes/" + encodeURIComponent(this._quiz.key) + "/responses"), {
        method: "POST",
        headers: { "content-type": "application/json", authorization: this._auth() },
        body: JSON.stringify(body),
      })
        .then(function (r) {
          return r.json().then(function (j) { return { ok: r.ok, body: j }; });
        })
        .then(function (res) {
          if (!res.ok) {
            var detail = (res.body.errors || []).map(function (e) { return e.field + ": " + e.message; }).join("; ");
            throw new Error(detail || res.body.detail || res.body.title || "the answers were not accepted");
          }
          self.setAttribute("data-state", "completed");
          self._render([
            el("h2", { text: self._quiz.title }),
            el("p", { role: "status", text: "Thank you! Your answers were saved." }),
          ]);
          self.dispatchEvent(new CustomEvent("dermis:quiz-completed", { detail: res.body, bubbles: true, composed: true }));
        })
        .catch(function (e) {
          self._show(e.message);
        });
    }
  }

  window.customElements.define("dermis-quiz", DermisQuiz);
})();
