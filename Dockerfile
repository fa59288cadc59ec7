# SecBot service image: slim, non-root, with a health check on /healthz.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
# Only the product package: secbot_emulators/ (stand-ins for tests and the demo) stays out.
COPY secbot ./secbot
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app secbot
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY rules ./rules
# The shipped rules name these lists (inList) and the mapped sources they match.
COPY lists ./lists
COPY sources ./sources
USER secbot
ENV SECBOT_RULES_DIR=/app/rules SECBOT_LISTS_DIR=/app/lists SECBOT_SOURCES_DIR=/app/sources \
    SECBOT_HTTP_PORT=8080 PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"
STOPSIGNAL SIGTERM
ENTRYPOINT ["secbot"]
CMD ["run"]
