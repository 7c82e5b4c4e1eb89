# The scalar binary: one image for `scalar api`, `scalar coordinator`,
# `scalar agent` and `scalar migrate`.
FROM node:20-bookworm-slim
WORKDIR /app
RUN mkdir -p /state /data && chown node:node /state /data
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY src ./src
COPY actors ./actors
COPY machines ./machines
COPY tsconfig.json ./
USER node
EXPOSE 8080
ENTRYPOINT ["node", "bin/scalar.mjs"]
CMD ["api"]
