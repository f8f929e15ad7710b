#!/bin/sh
# certbroker lab: placeholder NDES CGI, used until the NDES emulator is built
# (tests/ndes/).  The admin page is a fixed UTF-8 page in NDES's format that
# names the authenticated user; the challenge it shows is NOT a secret and is
# accepted by nothing.  The SCEP endpoint is not implemented here.
case "${SCRIPT_NAME:-}" in
*/mscep_admin*)
        printf 'Status: 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n\r\n'
        printf '<HTML><Head><Meta HTTP-Equiv="Content-Type" Content-Type="text/html; charset=UTF-8">\n'
        printf '<Title>Network Device Enrollment Service</Title></Head>\n'
        printf '<Body BgColor=#FFFFFF><Font ID=locPageFont Face="Arial">\n'
        printf '<P> certbroker lab placeholder NDES admin page </P>\n'
        printf '<P> REMOTE_USER=%s </P>\n' "${REMOTE_USER:-}"
        printf '<P> The thumbprint (hash value) for the CA certificate is: <B> 0000000000000000000000000000000000000000 </B> </P>\n'
        printf '<P> The enrollment challenge password is: <B> 0123456789ABCDEF </B> </P>\n'
        printf '<P> This password can be used only once and will expire within 60 minutes. </P>\n'
        printf '</Font></Body></HTML>\n'
        ;;
*)
        printf 'Status: 501 Not Implemented\r\nContent-Type: text/plain\r\n\r\n'
        printf 'certbroker lab placeholder: no SCEP service here (set LAB_NDES_CGI to the NDES emulator)\n'
        ;;
esac
