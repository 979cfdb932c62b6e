# The breaker sidecar. Build: docker build -t breaker .
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY breaker ./breaker
RUN pip install --no-cache-dir -c constraints.txt . \
    && useradd --system --no-create-home breaker
COPY deploy/breaker.compose.toml /etc/breaker/breaker.toml
USER breaker
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=2s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=1)"
ENTRYPOINT ["breaker"]
CMD ["serve", "--config", "/etc/breaker/breaker.toml"]
