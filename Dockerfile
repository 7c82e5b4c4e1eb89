# The scalar binary: one image for `scalar api`, `scalar coordinator`,
# `scalar agent`, `scalar migrate`, `scalar keys` and `scalar simulate`.
# It runs the compiled build: the first stage compiles with the dev
# dependencies (TypeScript), the second holds only the runtime dependencies,
# bin/ and dist/ (no sources, no tsx).

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY scripts/build.mjs ./scripts/build.mjs
COPY src ./src
COPY actors ./actors
COPY machines ./machines
RUN npm run build

FROM node:20-bookworm-slim
WORKDIR /app
RUN mkdir -p /state /data && chown node:node /state /data
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY --from=build /app/dist ./dist
USER node
EXPOSE 8080
ENTRYPOINT ["node", "bin/scalar.mjs"]
CMD ["api"]
