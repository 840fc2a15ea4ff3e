#!/bin/bash
# Regenerates tests/fuzz/seeds/restconf: one file per seed, first byte = mode (see
# fuzz_targets/restconf_check.rs). Certificates come from openssl, so their bytes differ per run.
set -euo pipefail
out=${1:-$(dirname "$0")/seeds/restconf}
mkdir -p "$out"
seed() { printf "\\x$(printf %02x "$1")" > "$out/$2"; cat >> "$out/$2"; }

seed 0 gbd-json-digest-4.6 <<'X'
{
  "ietf-sztp-bootstrap-server:input": {
    "signed-data-preferred": [
      null
    ],
    "hw-model": "model-x",
    "os-name": "vendor-os",
    "os-version": "17.3R2.1",
    "nonce": "AAECAwQFBgcICQoLDA0ODw=="
  }
}
X
printf '' | seed 0 gbd-json-empty
printf '{}' | seed 0 gbd-json-empty-object
printf '{"ietf-sztp-bootstrap-server:input":{"signed-data-preferred":[null],"hw-model":"opi","os-name":"linux","os-version":"1","nonce":""}}' | seed 0 gbd-json-opi-empty-nonce
printf '{"ietf-sztp-bootstrap-server:input":{"signed-data-preferred":[null],"hw-model":"lab-1","ietf-sztp-csr:csr-support":{"key-generation":{"supported-algorithms":{"algorithm-identifier":["BgcqhkjOPQIB"]}},"csr-generation":{"supported-formats":{"format-identifier":["ietf-ztp-types:p10-csr"]}}}}}' | seed 0 gbd-json-csr-support
printf '{"ietf-sztp-bootstrap-server:input":{"hw-model":"loop-1"}}' | seed 0 gbd-json-loop
printf '{"ietf-sztp-bootstrap-server:input":{"hw-model":5}}' | seed 0 gbd-json-bad-leaf
printf '{"ietf-sztp-bootstrap-server:input":{"nonce":"AAEC"}}' | seed 0 gbd-json-short-nonce
printf '{"input":{"ietf-sztp-bootstrap-server:hw-model":"m\\u00e9\\n"}}' | seed 0 gbd-json-unqualified
printf '{"ietf-sztp-bootstrap-server:input": {' | seed 0 gbd-json-truncated
printf '<input xmlns="urn:ietf:params:xml:ns:yang:ietf-sztp-bootstrap-server">\n  <signed-data-preferred/>\n  <hw-model>C9300-24T</hw-model>\n  <os-version>17.18.1</os-version>\n</input>' | seed 1 gbd-xml-iosxe
printf '<?xml version="1.0"?><s:input xmlns:s="urn:ietf:params:xml:ns:yang:ietf-sztp-bootstrap-server"><s:hw-model>lab&amp;1</s:hw-model><csr-support xmlns="urn:ietf:params:xml:ns:yang:ietf-sztp-csr"><key-generation/></csr-support></s:input>' | seed 1 gbd-xml-prefixed-csr
printf '<input><hw-model><![CDATA[x<y]]></hw-model><nonce>AAECAwQFBgcICQoLDA0ODw==</nonce></input>' | seed 1 gbd-xml-cdata
printf '<!DOCTYPE input [<!ENTITY e "x">]><input><hw-model>&e;</hw-model></input>' | seed 1 gbd-xml-doctype
printf '<input><hw-model>loop</hw-model></inptu>' | seed 1 gbd-xml-mismatch
printf '{"ietf-sztp-bootstrap-server:input":{"progress-type":"bootstrap-initiated"}}' | seed 2 rp-json-initiated
printf '{"ietf-sztp-bootstrap-server:input":{"progress-type":"bootstrap-complete","message":"done","ssh-host-keys":{"ssh-host-key":[{"algorithm":"ssh-ed25519","key-data":"AAAA"}]},"trust-anchor-certs":{"trust-anchor-cert":["AAAA"]}}}' | seed 2 rp-json-complete
printf '{"ietf-sztp-bootstrap-server:input":{"progress-type":"finished"}}' | seed 2 rp-json-unknown-type
printf '<input xmlns="urn:ietf:params:xml:ns:yang:ietf-sztp-bootstrap-server"><progress-type>informational</progress-type><message>a &lt; b</message></input>' | seed 3 rp-xml-informational
printf 'Basic U04xMjM6' | seed 5 auth-basic-user
printf 'Basic U04xMjM6c2VjcmV0' | seed 5 auth-basic-password
printf 'Bearer abc' | seed 5 auth-bearer

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cert() { # name, subject, key options
  openssl req -x509 -nodes -days 3650 -keyout "$tmp/k" -out "$tmp/c.pem" -subj "$2" ${3} 2>/dev/null
  openssl x509 -in "$tmp/c.pem" -outform DER -out "$tmp/c.der"
  seed 4 "$1" < "$tmp/c.der"
}
cert cert-cisco-sudi '/serialNumber=PID:C9300-24T SN:FCW2129G03A/O=Cisco/OU=ACT-2 Lite SUDI/CN=C9300-24T-FCW2129G03A' '-newkey rsa:2048'
cert cert-plain-serial '/serialNumber=SN123/CN=device' '-newkey ec -pkeyopt ec_paramgen_curve:P-256'
cert cert-cn-only '/CN=SN456' '-newkey ec -pkeyopt ec_paramgen_curve:P-256'
cert cert-utf8 '/serialNumber=V\xc3\xa9r1/CN=d\xc3\xa9v' '-newkey ec -pkeyopt ec_paramgen_curve:P-384 -utf8'
printf '\x30\x03\x02\x01\x01' | seed 4 cert-garbage
