-- wrk script: POST /oauth2/par as client "bench" (HTTP Basic), a valid PKCE request.
-- Prints wrk's count of error statuses (>= 400) so a run that fails requests shows it.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
-- base64("bench:bench-secret-0123456789")
wrk.headers["Authorization"] = "Basic YmVuY2g6YmVuY2gtc2VjcmV0LTAxMjM0NTY3ODk="
wrk.body = "client_id=bench&response_type=code&scope=openid&redirect_uri=http%3A%2F%2F127.0.0.1%3A9000%2Fcallback"
  .. "&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"

done = function(summary, latency, requests)
  io.write(string.format("status_errors %d\n", summary.errors.status))
  io.write(string.format("p50_ms %.2f\np99_ms %.2f\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
