#!/bin/sh
# The busctl commands of certbroker's D-Bus API (org.certbroker.Broker1(5)), as written in
# org.certbroker.Broker1(5): enroll one name, wait for it, read the certificate, take the key (once).
#   busctl-api.sh NAME [CA]     prints the certificate, then the key, as busctl shows them
set -eu
name=${1:-web.a.example.com}
ca=${2:-corp}

# Enroll: prints  o "/org/certbroker/Broker1/request/<id>"
out=$(busctl call org.certbroker.Broker1 /org/certbroker/Broker1 org.certbroker.Broker1.Manager \
    Enroll ssasa{sv} "$ca" "" 1 "$name" 0)
path=${out#o \"}
path=${path%\"}
id=${path##*/}
echo "request: $id" >&2

# Wait up to 30 s: prints  s "issued"
busctl call org.certbroker.Broker1 /org/certbroker/Broker1/request/"$id" \
    org.certbroker.Broker1.Request Wait t 30000000

busctl get-property org.certbroker.Broker1 /org/certbroker/Broker1/request/"$id" \
    org.certbroker.Broker1.Request Certificate

busctl call org.certbroker.Broker1 /org/certbroker/Broker1/request/"$id" \
    org.certbroker.Broker1.Request TakeKey
