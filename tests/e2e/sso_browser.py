#!/usr/bin/env python3
"""A scripted browser for web single sign-on tests (standard library only).

usage: sso_browser.py URL USER PASSWORD [--form-button NAME] [--max-pages N]
                      [--timeout S]

GETs URL with a cookie jar and follows redirects (301, 302 and 303 become a
GET; 307 and 308 repeat the request; at most 20 in all; none to a scheme
other than http or https). Every HTML page that has a form gets the form
submitted, as a person clicking its button would: hidden and prefilled
inputs are kept, inputs named login or username get USER, the password
input (name password or type password) gets PASSWORD, checked boxes and the
first option of a select go along. The button clicked is the one whose
name, value or label is NAME (--form-button), else the form's first submit
button; its name=value goes along if it has a name. With --form-button, the
first form holding such a button is the one submitted, else the page's
first form. Method and action as the form says (action relative to the
page's URL); the body is always application/x-www-form-urlencoded.

It stops at a page without a form, at an HTTP error status (4xx, 5xx, or a
3xx without Location), at a redirect it will not follow, or when a form
would make page --max-pages + 1 (default 10 pages, redirects not counted).
Then it prints three lines on stdout:
    url: FINAL_URL
    status: HTTP_STATUS          (0 if no answer came at all)
    text: the page's visible text, tags stripped, whitespace collapsed
and exits 0 if the final status is 2xx and no limit was hit, 1 otherwise.
Each request is logged on stderr. --timeout S (default 10) is per request.
Cookies are kept for the whole run, also on IP-address hosts over http.
"""
import argparse
import http.cookiejar
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser

USER_FIELDS = {"login", "username"}
MAX_REDIRECTS = 20
HIDDEN_TEXT = {"script", "style", "template", "head", "title", "noscript", "select", "textarea"}


class Page(HTMLParser):
    """The forms of a page (with their fields and buttons) and its visible text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms = []
        self.form = None
        self.text = []
        self.hidden = 0
        self.button = None      # a <button> being read: its label collects here
        self.select = None
        self.option = False     # reading the label of the option chosen so far
        self.textarea = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag in HIDDEN_TEXT:
            self.hidden += 1
        if tag == "form":
            self.form = {"action": a.get("action", ""), "method": a.get("method", "get").lower(),
                         "fields": [], "buttons": []}
            self.forms.append(self.form)
            return
        if self.form is None or "disabled" in a:
            return
        if tag == "input":
            kind = a.get("type", "text").lower()
            if kind in ("submit", "image"):
                self.form["buttons"].append({"name": a.get("name", ""), "value": a.get("value", ""),
                                             "label": a.get("value", "")})
            elif kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.form["fields"].append([a.get("name", ""), kind, a.get("value", "on")])
            elif kind not in ("button", "reset", "file"):
                self.form["fields"].append([a.get("name", ""), kind, a.get("value", "")])
        elif tag == "button":
            if a.get("type", "submit").lower() == "submit":
                self.button = {"name": a.get("name", ""), "value": a.get("value", ""), "label": ""}
                self.form["buttons"].append(self.button)
        elif tag == "select":
            self.select = [a.get("name", ""), "select", None]
            self.form["fields"].append(self.select)
        elif tag == "option" and self.select is not None:
            self.option = self.select[2] is None or "selected" in a
            if self.option:
                self.select[2] = a.get("value")     # None: the label, read in handle_data
        elif tag == "textarea":
            self.textarea = [a.get("name", ""), "textarea", ""]
            self.form["fields"].append(self.textarea)

    def handle_endtag(self, tag):
        if tag in HIDDEN_TEXT and self.hidden:
            self.hidden -= 1
        if tag == "form":
            self.form = None
        elif tag == "button":
            self.button = None
        elif tag == "select":
            if self.select is not None and self.select[2] is None:
                self.select[2] = ""
            self.select = None
        elif tag == "option":
            self.option = False
        elif tag == "textarea":
            self.textarea = None

    def handle_data(self, data):
        if self.button is not None:
            self.button["label"] += data
        if self.textarea is not None:
            self.textarea[2] += data
        if self.select is not None and self.option and self.select[2] is None:
            self.select[2] = data.strip()
        if not self.hidden:
            self.text.append(data)

    def visible_text(self):
        return " ".join(" ".join(self.text).split())


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hand 3xx answers back as errors: the main loop follows them itself."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def web_url(url):
    return urllib.parse.urlsplit(url).scheme.lower() in ("http", "https")


def pick_form(forms, button_name):
    if button_name is not None:
        for form in forms:
            if find_button(form, button_name) is not None:
                return form
    return forms[0]


def find_button(form, name):
    for b in form["buttons"]:
        if name in (b["name"], b["value"], " ".join(b["label"].split())):
            return b
    return None


def form_data(form, user, password, button_name):
    pairs = []
    for name, kind, value in form["fields"]:
        if not name:
            continue
        if name.lower() in USER_FIELDS and kind not in ("hidden", "checkbox", "radio", "select"):
            value = user
        elif name.lower() == "password" or kind == "password":
            value = password
        pairs.append((name, value or ""))
    button = find_button(form, button_name) if button_name is not None else None
    if button is None and form["buttons"]:
        button = form["buttons"][0]
    if button is not None and button["name"]:
        pairs.append((button["name"], button["value"]))
    return pairs


def main():
    ap = argparse.ArgumentParser(description="scripted browser for SSO tests")
    ap.add_argument("url")
    ap.add_argument("user")
    ap.add_argument("password")
    ap.add_argument("--form-button", metavar="NAME")
    ap.add_argument("--max-pages", type=int, default=10, metavar="N")
    ap.add_argument("--timeout", type=float, default=10, metavar="S")
    args = ap.parse_args()

    jar = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy())
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect())
    headers = {"User-Agent": "tollgate-sso-browser/1", "Accept": "text/html,*/*;q=0.5"}

    url, method, data = args.url, "GET", None
    status, text, pages, redirects, ok = 0, "", 0, 0, True
    while True:
        if not web_url(url):
            log(f"not following {url}: only http and https")
            ok = False
            break
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        if data is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            resp = opener.open(req, timeout=args.timeout)
        except urllib.error.HTTPError as e:
            resp = e
        except (urllib.error.URLError, OSError, socket.timeout) as e:
            log(f"{method} {url}: {getattr(e, 'reason', e)}")
            status, text, ok = 0, "", False
            break
        status, rh = resp.getcode(), resp.headers
        try:
            body = resp.read()
        except (OSError, AttributeError) as e:
            log(f"{method} {url}: reading the answer: {e}")
            body = b""
        finally:
            resp.close()
        log(f"{method} {url} -> {status}")
        location = rh.get("Location")
        if status in (301, 302, 303, 307, 308) and location:
            redirects += 1
            if redirects > MAX_REDIRECTS:
                log(f"more than {MAX_REDIRECTS} redirects")
                text, ok = "", False
                break
            url = urllib.parse.urljoin(url, location)
            if status not in (307, 308):
                method, data = "GET", None
            continue
        pages += 1
        ctype = rh.get_content_type()
        charset = rh.get_content_charset() or "utf-8"
        try:
            html = body.decode(charset, "replace")
        except LookupError:
            html = body.decode("utf-8", "replace")
        page = Page()
        if "html" in ctype or not rh.get("Content-Type"):
            page.feed(html)
            page.close()
            text = page.visible_text()
        else:
            text = " ".join(html.split())
        if not 200 <= status < 300 or not page.forms:
            break
        if pages >= args.max_pages:
            log(f"page {pages} still has a form: --max-pages {args.max_pages} reached")
            ok = False
            break
        form = pick_form(page.forms, args.form_button)
        target = urllib.parse.urljoin(url, form["action"] or url)
        target = urllib.parse.urldefrag(target)[0]
        pairs = form_data(form, args.user, args.password, args.form_button)
        log(f"submitting form to {target} with fields {', '.join(n for n, _ in pairs) or '(none)'}")
        encoded = urllib.parse.urlencode(pairs)
        if form["method"] == "post":
            url, method, data = target, "POST", encoded.encode("ascii")
        else:
            parts = urllib.parse.urlsplit(target)
            url, method, data = urllib.parse.urlunsplit(parts._replace(query=encoded)), "GET", None

    print(f"url: {url}")
    print(f"status: {status}")
    print(f"text: {text}")
    sys.stdout.flush()
    return 0 if ok and 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
