#!/bin/sh
# certbroker lab: answers 401 Negotiate to every request, with or without a
# valid Kerberos ticket (what IIS kernel-mode authentication does when the SPN
# is on the service account but useAppPoolCredentials is off).
printf 'Status: 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\nContent-Type: text/plain\r\n\r\n'
printf 'certbroker lab: this route always answers 401\n'
