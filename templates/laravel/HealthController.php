<?php

// Installed by kiln's laravel recipe: the load balancer's health check. It really
// queries the database (through the local ProxySQL), so an instance that cannot reach
// Aurora is taken out of service.

namespace App\Http\Controllers\Kiln;

use Illuminate\Http\JsonResponse;
use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Log;
use Throwable;

final class HealthController
{
    public function __invoke(): JsonResponse
    {
        $database = 'connected';
        try {
            DB::connection()->select('SELECT 1');
        } catch (Throwable $e) {
            $database = 'disconnected';
            Log::warning('health check: database unreachable', ['error' => $e->getMessage()]);
        }
        $healthy = $database === 'connected';

        return response()->json([
            'status' => $healthy ? 'healthy' : 'unhealthy',
            'timestamp' => now()->toIso8601String(),
            'database' => $database,
            'environment' => config('app.env'),
            'version' => '{{ app_version }}',
        ], $healthy ? 200 : 503);
    }
}
